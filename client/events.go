package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
)

// Events subscribes to the server's task events (GET /events): changes of
// state or progress of the given tasks and of the tasks of the given groups,
// or of every task the caller may see when both are empty. It returns once
// the server has answered, so a change made after Events returns is
// delivered: read a task's state after subscribing to miss none of its
// changes. The stream ends when ctx ends or Close is called.
func (c *Client) Events(ctx context.Context, tasks, groups []uuid.UUID) (*EventStream, error) {
	q := url.Values{}
	for _, id := range tasks {
		q.Add("task", id.String())
	}
	for _, id := range groups {
		q.Add("task_group", id.String())
	}
	ref := "/events"
	if len(q) > 0 {
		ref += "?" + q.Encode()
	}
	resp, err := c.do(ctx, http.MethodGet, ref, nil, "text/event-stream")
	if err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		resp.Body.Close()
		return nil, fmt.Errorf("events: %s answered %q, not text/event-stream", c.server, resp.Header.Get("Content-Type"))
	}
	return NewEventStream(resp.Body), nil
}

// ErrResync is what EventStream.Next returns when the server says that
// changes may have been lost (an apiv1.EventResync event): the caller
// re-reads the tasks it follows, then calls Next again; the stream goes on.
var ErrResync = errors.New("events: changes may have been lost; re-read the tasks followed")

// maxEventBytes bounds one event's data, so a broken peer cannot exhaust
// memory. A variable for the tests.
var maxEventBytes = 16 << 20

// EventStream reads task events from a Server-Sent Events stream. It is
// not safe for concurrent use, except that Close may be called at any time
// to end a Next that blocks.
type EventStream struct {
	body   io.ReadCloser
	r      *bufio.Reader
	lastCR bool   // the last line ended with \r: skip a \n that follows
	lastID string // the id of the last event read
	start  bool   // at the start of the stream: skip a byte order mark
}

// NewEventStream reads Server-Sent Events from body, such as the body of a
// GET /events answer; Close closes body.
func NewEventStream(body io.ReadCloser) *EventStream {
	return &EventStream{body: body, r: bufio.NewReader(body), start: true}
}

// Next returns the next task event, or ErrResync when the server says
// that changes may have been lost since the last event. It skips comments (lines starting with
// a colon, which servers send to keep connections open), events of other
// types and events without data; it joins the lines of multi-line data. At
// the end of the stream it returns io.EOF; a half-received event at the end
// is dropped, as the SSE specification says.
func (s *EventStream) Next() (apiv1.TaskEvent, error) {
	var (
		event string
		data  strings.Builder
		lines int
	)
	for {
		line, err := s.readLine()
		if err != nil {
			return apiv1.TaskEvent{}, err
		}
		if line == "" { // an empty line dispatches the event
			if lines > 0 && event == apiv1.EventResync {
				return apiv1.TaskEvent{}, ErrResync
			}
			if lines > 0 && (event == "" || event == apiv1.EventTask) {
				var ev apiv1.TaskEvent
				if err := json.Unmarshal([]byte(data.String()), &ev); err != nil {
					return apiv1.TaskEvent{}, fmt.Errorf("events: bad task event %q: %w", data.String(), err)
				}
				return ev, nil
			}
			event, lines = "", 0
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			event = value
		case "data":
			if lines > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			lines++
			if data.Len() > maxEventBytes {
				return apiv1.TaskEvent{}, fmt.Errorf("events: an event is over %d bytes", maxEventBytes)
			}
		case "id":
			if !strings.ContainsRune(value, 0) {
				s.lastID = value
			}
		}
	}
}

// LastEventID returns the id of the last event read, if the server sends
// ids.
func (s *EventStream) LastEventID() string { return s.lastID }

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }

// readLine reads one line ended by \n, \r\n or \r, without its end.
func (s *EventStream) readLine() (string, error) {
	var line []byte
	for {
		b, err := s.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", io.EOF // an unfinished line ends nothing
			}
			return "", err
		}
		if s.start {
			s.start = false
			if b == 0xEF { // UTF-8 byte order mark, EF BB BF
				if bom, err := s.r.Peek(2); err == nil && bom[0] == 0xBB && bom[1] == 0xBF {
					s.r.Discard(2) //nolint:errcheck // peeked
					continue
				}
			}
		}
		cr := s.lastCR
		s.lastCR = false
		switch b {
		case '\n':
			if cr {
				continue // the \n of a \r\n
			}
			return string(line), nil
		case '\r':
			s.lastCR = true
			return string(line), nil
		}
		line = append(line, b)
		if len(line) > maxEventBytes {
			return "", fmt.Errorf("events: a line is over %d bytes", maxEventBytes)
		}
	}
}
