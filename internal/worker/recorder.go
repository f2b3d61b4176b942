package worker

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// progressInterval is the shortest time between two writes of progress
// reports for one task; reports made faster are coalesced.
const progressInterval = 200 * time.Millisecond

// Recorder keeps the outputs of one run and writes them, fenced by the run's
// attempt. It is safe for concurrent use by the task's goroutines.
type Recorder struct {
	store   store.Store
	id      uuid.UUID
	attempt int
	fenced  func() // called when the run no longer owns the task

	// flushMu serialises writes, so that a Flush returns only once what
	// was recorded before it is stored, even if a coalesced write of the
	// same outputs was still in flight when it was called.
	flushMu sync.Mutex

	mu        sync.Mutex
	out       store.Outputs
	dirty     bool
	lastSave  time.Time
	saveTimer *time.Timer
}

func newRecorder(st store.Store, t *store.Task, fenced func()) *Recorder {
	return &Recorder{store: st, id: t.ID, attempt: t.Attempt, fenced: fenced, out: t.Outputs}
}

// Progress records a progress report, replacing the earlier one with the
// same code. Writes are coalesced to one every 200 ms.
func (r *Recorder) Progress(p store.ProgressReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	replaced := false
	for i := range r.out.ProgressReports {
		if r.out.ProgressReports[i].Code == p.Code {
			r.out.ProgressReports[i] = p
			replaced = true
			break
		}
	}
	if !replaced {
		r.out.ProgressReports = append(r.out.ProgressReports, p)
	}
	r.dirty = true
	if r.saveTimer != nil {
		return
	}
	wait := progressInterval - time.Since(r.lastSave)
	if wait < 0 {
		wait = 0
	}
	r.saveTimer = time.AfterFunc(wait, func() {
		r.mu.Lock()
		r.saveTimer = nil
		r.mu.Unlock()
		r.Flush(context.Background()) //nolint:errcheck // best effort; the final flush reports errors
	})
}

// NonFatalError records an error the task recovered from and writes it at
// once, so it is kept even if the task later fails or is killed.
func (r *Recorder) NonFatalError(ctx context.Context, e store.TaskError) error {
	r.mu.Lock()
	r.out.NonFatalErrors = append(r.out.NonFatalErrors, e)
	r.dirty = true
	r.mu.Unlock()
	return r.Flush(ctx)
}

// CreatedResource records something the task created, written at once so the
// task type's cleanup hook finds it whatever happens next.
func (r *Recorder) CreatedResource(ctx context.Context, name string) error {
	r.mu.Lock()
	r.out.CreatedResources = append(r.out.CreatedResources, name)
	r.dirty = true
	r.mu.Unlock()
	return r.Flush(ctx)
}

// Flush writes the outputs if they changed since the last write.
func (r *Recorder) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	if !r.dirty {
		r.mu.Unlock()
		return nil
	}
	out := store.Outputs{
		NonFatalErrors:   append([]store.TaskError(nil), r.out.NonFatalErrors...),
		ProgressReports:  append([]store.ProgressReport(nil), r.out.ProgressReports...),
		CreatedResources: append([]string(nil), r.out.CreatedResources...),
	}
	r.dirty = false
	r.lastSave = time.Now()
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, DefaultCallTimeout)
	defer cancel()
	owned, err := r.store.SaveOutputs(ctx, r.id, r.attempt, out)
	if err != nil {
		r.mu.Lock()
		r.dirty = true
		r.mu.Unlock()
		return err
	}
	if !owned && r.fenced != nil {
		r.fenced()
	}
	return nil
}

// stop cancels a pending coalesced write.
func (r *Recorder) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.saveTimer != nil {
		r.saveTimer.Stop()
		r.saveTimer = nil
	}
}
