package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/changefeed"
	"github.com/stint-dev/stint/store"
)

// TestReadsDoNotWaitForTheWriter reads while a write transaction is open
// and has written: the reads answer at once, from the last commit.
func TestReadsDoNotWaitForTheWriter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "stint.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	nt := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.a", Args: json.RawMessage(`{}`)}
	if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
		t.Fatal(err)
	}
	written, release := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- st.write(ctx, func(w *wtx) error {
			if _, err := w.tx.ExecContext(ctx, `UPDATE stint_tasks SET owner = 'writer'`); err != nil {
				return err
			}
			close(written)
			<-release
			return errors.New("roll back")
		})
	}()
	<-written
	start := time.Now()
	task, err := st.Task(ctx, nt.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ListTasks(ctx, store.TaskFilter{Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Workers(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("reads took %v while a write was open", d)
	}
	if task.Owner != "" {
		t.Errorf("a read saw the uncommitted write: owner %q", task.Owner)
	}
	close(release)
	if err := <-errc; err == nil || err.Error() != "roll back" {
		t.Fatalf("write: %v", err)
	}
}

// TestChangesOverflow fills a reader's backlog past changefeed.MaxBacklog:
// the reader gets every task it kept, coalesced, then an empty batch saying
// that changes were lost, and the store counts them.
func TestChangesOverflow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "stint.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ch, err := st.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the channel's buffer with small batches, then the backlog.
	first := uuid.Must(uuid.NewV7())
	for range changefeed.Buffer + 1 {
		st.hub.publish([]store.TaskChange{{ID: first, State: store.StateWaiting}}, false, false)
	}
	time.Sleep(50 * time.Millisecond) // let the sender block on the full channel
	st.hub.publish([]store.TaskChange{{ID: first, State: store.StateCompleted}}, false, false)
	var big []store.TaskChange
	for range changefeed.MaxBacklog + 10 {
		big = append(big, store.TaskChange{ID: uuid.Must(uuid.NewV7()), State: store.StateRunning})
	}
	st.hub.publish(big, false, false)
	seen := map[uuid.UUID]store.State{}
	lost := false
	deadline := time.After(10 * time.Second)
	for !lost {
		select {
		case batch := <-ch:
			if len(batch) == 0 {
				lost = true
			}
			for _, c := range batch {
				seen[c.ID] = c.State
			}
		case <-deadline:
			t.Fatal("no empty batch after the backlog overflowed")
		}
	}
	if seen[first] != store.StateCompleted {
		t.Errorf("the latest state of a coalesced task: %s", seen[first])
	}
	if n := st.DroppedChanges(); n == 0 {
		t.Error("DroppedChanges() = 0 after an overflow")
	}
}
