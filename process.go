package stint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// Process isolation: the worker runs a task of a type registered with
// InChildProcess by executing its own binary again, with childEnv set.
// RunChildProcess, called first thing in main, sees it and runs the task.
// Worker and child talk in JSON lines (procMessage) over two pipes passed
// as extra file descriptors; stdin is /dev/null, and stdout and stderr are
// the task's own, copied to the worker's stderr.
const (
	childEnv      = "STINT_CHILD_PROCESS"
	childEnvValue = "1"
	// childInFD carries the worker's messages to the child: the task,
	// then "cancel" and replies. cmd.ExtraFiles[0].
	childInFD = 3
	// childOutFD carries the child's messages to the worker. ExtraFiles[1].
	childOutFD = 4
)

// Message types of the protocol between worker and child.
const (
	msgTask            = "task"             // worker → child, first: Task
	msgCancel          = "cancel"           // worker → child: cancel the task's context
	msgReply           = "reply"            // worker → child: the answer to call Call
	msgProgress        = "progress"         // child → worker: Progress
	msgNonFatalError   = "non_fatal_error"  // child → worker, a call: Error
	msgCreatedResource = "created_resource" // child → worker, a call: Resource
	msgDispatch        = "dispatch"         // child → worker, a call: Dispatch
	msgDone            = "done"             // child → worker, last: Result or Error
)

// procMessage is one line of the protocol; Type says which fields are set.
type procMessage struct {
	Type string `json:"type"`
	// Call numbers a child's request that wants a reply, and the reply.
	Call     int64                 `json:"call,omitempty"`
	Task     *childTask            `json:"task,omitempty"`
	Progress *store.ProgressReport `json:"progress,omitempty"`
	// Error is a non-fatal error, or the error that ended the run.
	Error    *store.TaskError `json:"error,omitempty"`
	Resource string           `json:"resource,omitempty"`
	Dispatch *childDispatch   `json:"dispatch,omitempty"`
	Result   json.RawMessage  `json:"result,omitempty"`
	// Replies: Failure is the error of the call, if any; Invalid, a
	// refused dispatch; Dispatched, the child task dispatched.
	Failure    string           `json:"failure,omitempty"`
	Invalid    *ValidationError `json:"invalid,omitempty"`
	Dispatched *store.Task      `json:"dispatched,omitempty"`
}

// childTask is what a child process is told of the task it runs.
type childTask struct {
	ID         uuid.UUID       `json:"id"`
	Name       string          `json:"name"`
	Args       json.RawMessage `json:"args,omitempty"`
	Attempt    int             `json:"attempt"`
	Owner      string          `json:"owner,omitempty"`
	TaskGroup  *uuid.UUID      `json:"task_group,omitempty"`
	ParentTask *uuid.UUID      `json:"parent_task,omitempty"`
	// WorkRoot is the worker's working directory, which holds the task's.
	WorkRoot string `json:"work_root,omitempty"`
}

func newChildTask(run *Run) *childTask {
	t := run.task
	return &childTask{ID: t.ID, Name: t.Name, Args: t.Args, Attempt: t.Attempt, Owner: t.Owner,
		TaskGroup: t.TaskGroup, ParentTask: t.ParentTask, WorkRoot: run.workRoot}
}

func (ct *childTask) storeTask() *store.Task {
	return &store.Task{ID: ct.ID, Name: ct.Name, State: store.StateRunning, Args: ct.Args, Attempt: ct.Attempt,
		Owner: ct.Owner, TaskGroup: ct.TaskGroup, ParentTask: ct.ParentTask}
}

// childDispatch is a DispatchRequest a child asks its worker to make, with
// its args encoded. Parent, owner and default group are the worker's to set.
type childDispatch struct {
	Name               string            `json:"name"`
	Args               json.RawMessage   `json:"args,omitempty"`
	ExclusiveResources []string          `json:"exclusive_resources,omitempty"`
	SharedResources    []string          `json:"shared_resources,omitempty"`
	Versions           map[string]string `json:"versions,omitempty"`
	TaskGroup          *uuid.UUID        `json:"task_group,omitempty"`
}

func (d *childDispatch) request() DispatchRequest {
	return DispatchRequest{Name: d.Name, Args: d.Args, ExclusiveResources: d.ExclusiveResources,
		SharedResources: d.SharedResources, Versions: d.Versions, TaskGroup: d.TaskGroup}
}

// Limits of the worker's side.
const (
	// stderrTail is how much of a child's stderr the worker keeps, for
	// the error of a child that ends without a result.
	stderrTail = 4 << 10
	// childWaitDelay bounds how long the worker waits for a child's
	// stderr to close once it exited (a grandchild may hold it).
	childWaitDelay = 2 * time.Second
	// childReadDelay bounds how long the worker waits for the child's
	// message pipe to close once it exited.
	childReadDelay = 5 * time.Second
)

// runInChild runs one task of type tt in a child process: it starts the
// worker's own binary, sends it the task, applies what the child reports
// to run (outputs to the fenced Recorder, children through run.Dispatch),
// and returns the child's result or error. When ctx ends it tells the
// child to cancel and, if the child is still there after grace, kills its
// process group. The task's working directory is removed at the end.
func (c *Client) runInChild(ctx context.Context, tt *taskType, run *Run, grace time.Duration) (json.RawMessage, *store.TaskError) {
	defer run.removeWorkDir()
	if err := childProcessesUsable(); err != nil {
		return nil, &store.TaskError{Kind: ProcessKind, Description: fmt.Sprintf("task type %s runs in a child process: %v", tt.name, err)}
	}
	p, err := startChild()
	if err != nil {
		return nil, &store.TaskError{Kind: ProcessKind, Description: "starting the child process: " + err.Error()}
	}
	defer p.release()
	p.out <- procMessage{Type: msgTask, Task: newChildTask(run)}
	go p.writeLoop()
	go p.readLoop(ctx, run)
	return p.supervise(ctx, grace)
}

// childProcessesUsable says why this process cannot start child processes
// for tasks, if it cannot.
func childProcessesUsable() error {
	if !childProcessesSupported {
		return fmt.Errorf("child processes for tasks need Linux, not %s", runtime.GOOS)
	}
	if os.Getenv(childEnv) == childEnvValue {
		// A child whose main did not call RunChildProcess runs the
		// program as a whole; it must not start children in turn.
		return errors.New("this process is itself a task's child process, and its main did not call stint.RunChildProcess")
	}
	if !childProcessesReady.Load() {
		// Executing a program whose main does not hand the task over
		// would start the whole program again (a server, a worker).
		return errors.New("the worker's program does not call stint.RunChildProcess first thing in main, so it cannot run tasks in child processes")
	}
	return nil
}

// childProc is one running child process, seen from the worker.
type childProc struct {
	cmd       *exec.Cmd
	toChild   *os.File // write end of the child's input pipe
	fromChild *os.File // read end of the child's output pipe
	stderr    *tailBuffer

	out    chan procMessage // messages for the child, written in order by writeLoop
	stop   chan struct{}    // closed by release: writeLoop returns, senders give up
	exited chan error       // cmd.Wait's error, once the child is gone
	read   chan readEnd     // what readLoop found once the output pipe closed
}

// readEnd is how the child's output ended: its final message, if it sent
// one, and a protocol or read error.
type readEnd struct {
	final *procMessage
	err   error
}

// startChild starts the worker's own binary as a task's child process. It
// starts and waits for it on one locked OS thread: the child's parent-death
// signal (Linux) fires when the thread that forked it ends, not the process.
func startChild() (*childProc, error) {
	exe, err := selfExecutable()
	if err != nil {
		return nil, err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	p := &childProc{
		cmd:       exec.Command(exe),
		toChild:   inW,
		fromChild: outR,
		stderr:    &tailBuffer{max: stderrTail},
		out:       make(chan procMessage, 16),
		stop:      make(chan struct{}),
		exited:    make(chan error, 1),
		read:      make(chan readEnd, 1),
	}
	if len(os.Args) > 0 {
		p.cmd.Args[0] = os.Args[0] // what ps shows: the worker's own name
	}
	p.cmd.Env = append(os.Environ(), childEnv+"="+childEnvValue)
	p.cmd.Stdout = os.Stderr
	p.cmd.Stderr = io.MultiWriter(os.Stderr, p.stderr)
	p.cmd.ExtraFiles = []*os.File{inR, outW} // childInFD, childOutFD
	p.cmd.SysProcAttr = childSysProcAttr()
	p.cmd.WaitDelay = childWaitDelay
	started := make(chan error, 1)
	go p.startAndWait(started)
	err = <-started
	// The child's ends: the worker must not hold them, or it would never
	// see the child's output close.
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	return p, nil
}

// startAndWait starts the child and waits for it, on a locked OS thread.
func (p *childProc) startAndWait(started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := p.cmd.Start(); err != nil {
		started <- err
		return
	}
	started <- nil
	p.exited <- p.cmd.Wait()
}

// release closes the worker's ends of the pipes once the child is gone.
func (p *childProc) release() {
	close(p.stop)
	p.toChild.Close()
	p.fromChild.Close()
}

// send queues a message for the child; it gives up once the run is over.
func (p *childProc) send(m procMessage) {
	select {
	case p.out <- m:
	case <-p.stop:
	}
}

// writeLoop writes the queued messages to the child in order. After a
// failed write (the child is gone) it keeps taking messages, so that no
// sender waits, until release.
func (p *childProc) writeLoop() {
	enc := json.NewEncoder(p.toChild)
	var err error
	for {
		select {
		case m := <-p.out:
			if err == nil {
				err = enc.Encode(m)
			}
		case <-p.stop:
			return
		}
	}
}

// readLoop applies the child's messages to run until the child's output
// closes, then reports how it ended on p.read. Calls are answered with ctx,
// the run's context.
func (p *childProc) readLoop(ctx context.Context, run *Run) {
	dec := json.NewDecoder(p.fromChild)
	var end readEnd
	for {
		var m procMessage
		if err := dec.Decode(&m); err != nil {
			if !errors.Is(err, io.EOF) && end.final == nil {
				end.err = err
			}
			break
		}
		if m.Type == msgDone {
			end.final = &m
			continue
		}
		p.apply(ctx, run, m)
	}
	// After a malformed message, the child may go on writing: let it.
	io.Copy(io.Discard, p.fromChild) //nolint:errcheck
	p.read <- end
}

// apply records one message of the child in run and answers calls.
func (p *childProc) apply(ctx context.Context, run *Run, m procMessage) {
	reply := procMessage{Type: msgReply, Call: m.Call}
	var err error
	switch {
	case m.Type == msgProgress && m.Progress != nil:
		run.Progress(*m.Progress)
		return
	case m.Type == msgNonFatalError && m.Error != nil:
		err = run.rec.NonFatalError(ctx, *m.Error)
	case m.Type == msgCreatedResource:
		err = run.CreatedResource(ctx, m.Resource)
	case m.Type == msgDispatch && m.Dispatch != nil:
		reply.Dispatched, err = run.Dispatch(ctx, m.Dispatch.request())
		var ve *ValidationError
		if errors.As(err, &ve) {
			reply.Invalid = ve
		}
	default:
		err = fmt.Errorf("stint: the worker does not understand the message %q of its child process", m.Type)
	}
	if m.Call == 0 {
		return // not a call: nobody waits for an answer
	}
	if err != nil {
		reply.Failure = err.Error()
	}
	p.send(reply)
}

// supervise waits for the child to end. Once ctx ends, it tells the child
// to cancel, and kills its process group if it is still there after grace.
func (p *childProc) supervise(ctx context.Context, grace time.Duration) (json.RawMessage, *store.TaskError) {
	var (
		waitErr error
		killed  bool
	)
	select {
	case waitErr = <-p.exited:
	case <-ctx.Done():
		go p.send(procMessage{Type: msgCancel})
		timer := time.NewTimer(grace)
		select {
		case waitErr = <-p.exited:
		case <-timer.C:
			killed = true
			p.kill()
			waitErr = <-p.exited
		}
		timer.Stop()
	}
	end := p.awaitOutput()
	switch {
	case end.final != nil:
		return finalOutcome(end.final)
	case killed:
		return nil, &store.TaskError{Kind: KilledKind, Description: fmt.Sprintf(
			"the task's child process did not stop within %v of being told to stop (%v); the worker killed it", grace, context.Cause(ctx))}
	default:
		return nil, &store.TaskError{Kind: ProcessKind, Description: p.describeEnd(waitErr, end.err)}
	}
}

// kill kills the child's process group: the child and what it started.
func (p *childProc) kill() {
	if err := killProcessGroup(p.cmd.Process); err != nil {
		p.cmd.Process.Kill() //nolint:errcheck // the child may be gone already
	}
}

// awaitOutput waits for readLoop once the child is gone. The output pipe
// closes when the child exits; should something else hold it, the worker
// closes it after childReadDelay.
func (p *childProc) awaitOutput() readEnd {
	timer := time.NewTimer(childReadDelay)
	defer timer.Stop()
	select {
	case end := <-p.read:
		return end
	case <-timer.C:
		p.fromChild.Close()
		return <-p.read
	}
}

// finalOutcome is the result or the error of a child's last message.
func finalOutcome(m *procMessage) (json.RawMessage, *store.TaskError) {
	if m.Error != nil {
		return nil, m.Error
	}
	if len(m.Result) == 0 {
		return json.RawMessage("null"), nil
	}
	return m.Result, nil
}

// describeEnd says how a child that sent no result ended, with the end of
// its stderr.
func (p *childProc) describeEnd(waitErr, readErr error) string {
	var b strings.Builder
	b.WriteString("the task's child process ended without a result: ")
	switch {
	case waitErr != nil:
		b.WriteString(waitErr.Error())
	case readErr == nil:
		b.WriteString("exit status 0 (does the program's main call stint.RunChildProcess first?)")
	default:
		b.WriteString("exit status 0")
	}
	if readErr != nil {
		fmt.Fprintf(&b, "; reading its messages: %v", readErr)
	}
	if tail := p.stderr.String(); tail != "" {
		b.WriteString("; the end of its stderr:\n")
		b.WriteString(tail)
	}
	return b.String()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(b)
	if len(b) >= t.max {
		b = b[len(b)-t.max:]
		t.buf = t.buf[:0]
	} else if over := len(t.buf) + len(b) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, b...)
	return n, nil
}

// String returns the kept bytes as text that can be stored: valid UTF-8
// without NUL characters.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.ToValidUTF8(string(t.buf), "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}
