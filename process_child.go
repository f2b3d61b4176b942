package stint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/stint-dev/stint/store"
)

// RunChildProcess runs a task in the child process a worker started for it,
// and exits; in any other process it returns at once and does nothing.
//
// Programs whose task types use InChildProcess must call it first thing in
// main, before flags are parsed or anything is started, with a registry
// that holds the same task types as the worker's; test binaries call it in
// TestMain. A worker runs such a task by executing its own binary again
// with a marker in the environment; RunChildProcess finds the marker, reads
// the task from the worker, runs the type's function with a Run whose
// progress, non-fatal errors, created resources and child dispatches go to
// the worker, sends the result or the error (a panic's included), and
// exits with status 0. Its context is canceled when the worker says so. If
// the worker dies, the child exits too.
func RunChildProcess(reg *Registry) {
	if os.Getenv(childEnv) != childEnvValue {
		childProcessesReady.Store(true)
		return
	}
	// The processes the task starts are not task children themselves.
	os.Unsetenv(childEnv) //nolint:errcheck
	closeOnExec(childInFD)
	closeOnExec(childOutFD)
	in := os.NewFile(childInFD, "stint-from-worker")
	out := os.NewFile(childOutFD, "stint-to-worker")
	os.Exit(serveChild(reg, in, out))
}

// childProcessesReady is set when this program's main called
// RunChildProcess (and was not a child): only then may its workers execute
// it again for a task, which would otherwise start the whole program.
var childProcessesReady atomic.Bool

// Exit statuses of a child process that could not do its job.
const (
	exitNoTask     = 2 // no task could be read from the worker
	exitWorkerGone = 3 // the worker's pipe closed: the worker is gone
)

// serveChild reads a task from in, runs it with reg, reports to the worker
// on out, and returns the process's exit status.
func serveChild(reg *Registry, in io.Reader, out io.Writer) int {
	dec := json.NewDecoder(in)
	var first procMessage
	if err := dec.Decode(&first); err != nil || first.Type != msgTask || first.Task == nil {
		fmt.Fprintf(os.Stderr, "stint: a task's child process got no task from its worker (message %q, %v)\n", first.Type, err)
		return exitNoTask
	}
	link := &workerLink{enc: json.NewEncoder(out), pending: make(map[int64]chan procMessage)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go link.readLoop(dec, cancel)
	result, taskErr := runChildTask(ctx, reg, first.Task, link)
	if err := link.send(procMessage{Type: msgDone, Result: result, Error: taskErr}); err != nil {
		fmt.Fprintf(os.Stderr, "stint: a task's child process could not report its end to its worker: %v\n", err)
		return exitWorkerGone
	}
	return 0
}

// runChildTask runs the task ct describes with its type in reg, its
// outputs and dispatches going to the worker through link.
func runChildTask(ctx context.Context, reg *Registry, ct *childTask, link *workerLink) (json.RawMessage, *store.TaskError) {
	var tt *taskType
	ok := false
	if reg != nil {
		tt, ok = reg.lookup(ct.Name)
	}
	if !ok {
		return nil, &store.TaskError{Kind: UnknownTaskKind, Description: fmt.Sprintf(
			"no task type %q is registered in the child process: give RunChildProcess the worker's registry", ct.Name)}
	}
	run := &Run{task: ct.storeTask(), rec: link, viaWorker: link.dispatch, workRoot: ct.WorkRoot}
	return tt.call(ctx, run)
}

// workerLink is a child process's side of the pipes to its worker: the
// output sink of the task's Run, and its way to dispatch children.
type workerLink struct {
	writeMu sync.Mutex // one message at a time on the pipe
	enc     *json.Encoder

	mu       sync.Mutex
	lastCall int64
	pending  map[int64]chan procMessage // calls waiting for their reply
}

func (l *workerLink) send(m procMessage) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	return l.enc.Encode(m)
}

// Progress sends a progress report to the worker, which coalesces writes.
func (l *workerLink) Progress(p store.ProgressReport) {
	l.send(procMessage{Type: msgProgress, Progress: &p}) //nolint:errcheck // the worker is gone: nothing to report to
}

// NonFatalError has the worker record e, and returns once it did.
func (l *workerLink) NonFatalError(ctx context.Context, e store.TaskError) error {
	_, err := l.call(ctx, procMessage{Type: msgNonFatalError, Error: &e})
	return err
}

// CreatedResource has the worker record name, and returns once it did.
func (l *workerLink) CreatedResource(ctx context.Context, name string) error {
	_, err := l.call(ctx, procMessage{Type: msgCreatedResource, Resource: name})
	return err
}

// dispatch has the worker dispatch a child task of the run.
func (l *workerLink) dispatch(ctx context.Context, req DispatchRequest) (*Task, error) {
	args, err := encodeArgs(req.Args)
	if err != nil {
		return nil, &ValidationError{Index: -1, Field: "args", Message: err.Error()}
	}
	reply, err := l.call(ctx, procMessage{Type: msgDispatch, Dispatch: &childDispatch{
		Name: req.Name, Args: args, ExclusiveResources: req.ExclusiveResources,
		SharedResources: req.SharedResources, Versions: req.Versions, TaskGroup: req.TaskGroup,
	}})
	if err != nil {
		return nil, err
	}
	if reply.Dispatched == nil {
		return nil, errors.New("stint: the worker answered a dispatch without a task")
	}
	return reply.Dispatched, nil
}

// call sends m to the worker and waits for its reply, or for ctx to end.
func (l *workerLink) call(ctx context.Context, m procMessage) (procMessage, error) {
	ch := make(chan procMessage, 1)
	l.mu.Lock()
	l.lastCall++
	m.Call = l.lastCall
	l.pending[m.Call] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.pending, m.Call)
		l.mu.Unlock()
	}()
	if err := l.send(m); err != nil {
		return procMessage{}, fmt.Errorf("stint: writing to the worker: %w", err)
	}
	select {
	case r := <-ch:
		switch {
		case r.Invalid != nil:
			return r, r.Invalid
		case r.Failure != "":
			return r, errors.New(r.Failure)
		}
		return r, nil
	case <-ctx.Done():
		return procMessage{}, ctx.Err()
	}
}

// readLoop handles the worker's messages: it cancels ctx on "cancel" and
// hands replies to their calls. When the worker's pipe closes, the worker
// is gone, and the child exits at once: it must not outlive its worker.
func (l *workerLink) readLoop(dec *json.Decoder, cancel context.CancelFunc) {
	for {
		var m procMessage
		if err := dec.Decode(&m); err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Fprintf(os.Stderr, "stint: a task's child process lost its worker: %v\n", err)
			}
			os.Exit(exitWorkerGone)
		}
		switch m.Type {
		case msgCancel:
			cancel()
		case msgReply:
			l.mu.Lock()
			ch := l.pending[m.Call]
			l.mu.Unlock()
			select {
			case ch <- m: // buffered: the first reply to a waiting call
			default: // no such call (any more), or a second reply
			}
		}
	}
}
