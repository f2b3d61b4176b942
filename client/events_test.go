package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
)

func stream(s string) *EventStream { return NewEventStream(io.NopCloser(strings.NewReader(s))) }

func TestEventStreamParses(t *testing.T) {
	id := uuid.MustParse("01900000-0000-7000-8000-000000000001")
	in := "\xEF\xBB\xBF: a comment, then a keep-alive\n" +
		": ping\n\n" +
		// one event, data in two lines, \r\n line ends
		"event: task\r\nid: 7\r\ndata: {\"id\": \"" + id.String() + "\",\r\ndata: \"state\": \"running\", \"name\": \"stint.sleep\"}\r\n\r\n" +
		// an event of another type is skipped
		"event: other\ndata: {\"id\": 1}\n\n" +
		// no event field: the default type is taken; no space after the colon; \r line ends
		"data:{\"id\": \"" + id.String() + "\", \"state\": \"completed\", \"progress_reports\": [{\"message\": \"m\", \"total\": 3, \"done\": 3}]}\r\r" +
		// a field without a value, an unknown field, an empty event
		"retry\nfoo: bar\n\n" +
		// an unfinished event at the end is dropped
		"event: task\ndata: {\"id\": \"" + id.String() + "\"}"
	s := stream(in)
	ev, err := s.Next()
	if err != nil || ev.ID != id || ev.State != "running" || ev.Name != "stint.sleep" {
		t.Fatalf("first: %+v %v", ev, err)
	}
	if s.LastEventID() != "7" {
		t.Errorf("last id %q", s.LastEventID())
	}
	ev, err = s.Next()
	if err != nil || ev.State != "completed" || len(ev.ProgressReports) != 1 || *ev.ProgressReports[0].Total != 3 {
		t.Fatalf("second: %+v %v", ev, err)
	}
	if ev, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("third: %+v %v; want io.EOF", ev, err)
	}
}

func TestEventStreamBadData(t *testing.T) {
	defer func(n int) { maxEventBytes = n }(maxEventBytes)
	maxEventBytes = 1000
	if _, err := stream("data: {not json\n\n").Next(); err == nil || !strings.Contains(err.Error(), "bad task event") {
		t.Fatalf("got %v", err)
	}
	for _, in := range []string{
		"data: " + strings.Repeat("x", maxEventBytes+1) + "\n\n",          // a long line
		strings.Repeat("data: "+strings.Repeat("x", 100)+"\n", 20) + "\n", // many lines
	} {
		if _, err := stream(in).Next(); err == nil || !strings.Contains(err.Error(), "over 1000 bytes") {
			t.Fatalf("got %v", err)
		}
	}
}

// TestEventsOverHTTP checks the request Events sends, that events arrive as
// the server flushes them (not at the end), and that Close ends a blocked
// Next. The server is a fake that writes canned bytes.
func TestEventsOverHTTP(t *testing.T) {
	task, group := uuid.New(), uuid.New()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/api/v1/events" || q.Get("task") != task.String() || q.Get("task_group") != group.String() ||
			r.Header.Get("Accept") != "text/event-stream" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"detail": "unexpected request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Write([]byte(": hello\n\nevent: task\ndata: {\"id\": \"" + task.String() + "\", \"state\": \"waiting\"}\n\n")) //nolint:errcheck
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := New(srv.URL+"/", WithToken("tok"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.Events(ctx, []uuid.UUID{task}, []uuid.UUID{group})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := s.Next()
	if err != nil || ev.ID != task || ev.State != "waiting" {
		t.Fatalf("%+v %v", ev, err)
	}
	done := make(chan error)
	go func() {
		_, err := s.Next()
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Next after Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked Next")
	}
}

func TestEventsRefusesOtherContent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>")) //nolint:errcheck
	}))
	defer srv.Close()
	c, _ := New(srv.URL)
	if _, err := c.Events(context.Background(), nil, nil); err == nil || !strings.Contains(err.Error(), "not text/event-stream") {
		t.Fatalf("got %v", err)
	}
}

func TestTaskEventJSON(t *testing.T) {
	// The fields the CLI relies on decode from the documented names.
	ev, err := stream(`data: {"task": "/api/v1/tasks/01900000-0000-7000-8000-000000000001", "id": "01900000-0000-7000-8000-000000000001", "name": "n", "state": "failed", "task_group": null, "progress_reports": [], "updated_at": "2026-01-02T15:04:05.123456Z"}` + "\n\n").Next()
	if err != nil || ev.State != "failed" || ev.UpdatedAt.Year() != 2026 || ev.Task != apiv1.TaskHref(ev.ID) {
		t.Fatalf("%+v %v", ev, err)
	}
}
