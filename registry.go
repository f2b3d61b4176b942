package stint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"sort"
	"sync"

	"github.com/stint-dev/stint/store"
)

// Registry maps task names to the functions that run them. A Client uses it
// to validate dispatches and a Worker to run tasks. NewRegistry returns one
// that holds the built-in task types.
type Registry struct {
	mu    sync.RWMutex
	types map[string]*taskType
}

// taskType is one registered task type, with its args and result types
// erased behind closures.
type taskType struct {
	name string
	// decode checks that raw JSON args decode into the args type.
	decode func(raw json.RawMessage) error
	// run decodes the args and calls the task function.
	run func(ctx context.Context, r *Run, raw json.RawMessage) (json.RawMessage, error)
	// opts are the options given to Register.
	opts taskOptions
}

// taskNameRE is the form of a task name: dotted identifiers.
var taskNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z][A-Za-z0-9_-]*)*$`)

// MaxTaskNameLength is the longest task name Register accepts.
const MaxTaskNameLength = 200

// NewRegistry returns a registry holding the built-in task types
// stint.noop, stint.sleep and stint.purge, and stint.process.noop and
// stint.process.sleep, which run in a child process each (a program whose
// workers run them calls RunChildProcess first thing in main).
func NewRegistry() *Registry {
	reg := &Registry{types: make(map[string]*taskType)}
	registerBuiltins(reg)
	return reg
}

// TaskFunc is the function of a task type: it gets the run's handle and the
// decoded args and returns a result, which is stored as JSON.
type TaskFunc[A, R any] func(ctx context.Context, run *Run, args A) (R, error)

// Register adds a task type to reg. Args are decoded from the task's JSON
// with unknown fields rejected, both at dispatch (so bad args are refused at
// once) and when the task runs. The result is encoded as JSON.
//
// Options set the task type's isolation (InChildProcess), timeout
// (WithTimeout), cleanup hook (WithCleanup), who may dispatch it over the
// API (AdminOnly), the resources each of its tasks holds
// (WithExclusiveResources) and its retries (Retry, RetryDropped).
//
// Register panics if name is malformed or already registered: both are
// programming errors, found at start-up.
func Register[A, R any](reg *Registry, name string, fn TaskFunc[A, R], opts ...TaskOption) {
	if !taskNameRE.MatchString(name) || len(name) > MaxTaskNameLength {
		panic(fmt.Sprintf("stint: invalid task name %q: use dotted identifiers such as repo.sync", name))
	}
	tt := &taskType{
		name: name,
		decode: func(raw json.RawMessage) error {
			args, err := decodeArgs[A](raw)
			if err != nil {
				return err
			}
			if v, ok := any(args).(ArgsValidator); ok {
				return v.Validate()
			}
			return nil
		},
		run: func(ctx context.Context, r *Run, raw json.RawMessage) (json.RawMessage, error) {
			args, err := decodeArgs[A](raw)
			if err != nil {
				return nil, err
			}
			res, err := fn(ctx, r, args)
			if err != nil {
				return nil, err
			}
			out, err := json.Marshal(res)
			if err != nil {
				return nil, fmt.Errorf("encoding the result: %w", err)
			}
			return out, nil
		},
	}
	for _, o := range opts {
		o(&tt.opts)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if _, dup := reg.types[name]; dup {
		panic(fmt.Sprintf("stint: task %q registered twice", name))
	}
	reg.types[name] = tt
}

// ArgsValidator is implemented by args types that check their values beyond
// what JSON decoding checks. Dispatch calls Validate and refuses the task
// when it returns an error.
type ArgsValidator interface {
	Validate() error
}

// decodeArgs decodes raw into a new A, rejecting unknown fields and
// trailing data. Empty args decode as the zero value.
func decodeArgs[A any](raw json.RawMessage) (A, error) {
	var args A
	if len(bytes.TrimSpace(raw)) == 0 {
		return args, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&args); err != nil {
		return args, err
	}
	if dec.More() {
		return args, errors.New("unexpected data after the args")
	}
	return args, nil
}

// Names returns the registered task names, sorted.
func (reg *Registry) Names() []string {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	names := make([]string, 0, len(reg.types))
	for n := range reg.types {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// RequiresAdmin reports whether the task type name was registered with
// AdminOnly: the API lets only admins dispatch it. An unknown name does
// not (dispatch refuses it anyway).
func (reg *Registry) RequiresAdmin(name string) bool {
	tt, ok := reg.lookup(name)
	return ok && tt.opts.adminOnly
}

// hasCleanups reports whether a registered task type has a cleanup hook.
func (reg *Registry) hasCleanups() bool {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	for _, tt := range reg.types {
		if tt.opts.cleanup != nil {
			return true
		}
	}
	return false
}

func (reg *Registry) lookup(name string) (*taskType, bool) {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	tt, ok := reg.types[name]
	return tt, ok
}

// call runs one task of type tt in the calling goroutine: decodes its args
// and calls its function, making a panic a failure with the stack.
func (tt *taskType) call(ctx context.Context, r *Run) (result json.RawMessage, taskErr *store.TaskError) {
	defer func() {
		if p := recover(); p != nil {
			result = nil
			taskErr = &store.TaskError{Kind: PanicKind, Description: fmt.Sprint(p), Traceback: string(debug.Stack())}
		}
	}()
	res, err := tt.run(ctx, r, r.task.Args)
	if err != nil {
		return nil, errorOf(err)
	}
	return res, nil
}

// Error is an error with a kind, which a task may return to classify its
// failure. Any other error is recorded with kind "error".
type Error struct {
	Kind        string
	Description string
}

func (e *Error) Error() string { return e.Kind + ": " + e.Description }

func errorOf(err error) *store.TaskError {
	noRetry := isNoRetry(err)
	var te *Error
	if errors.As(err, &te) {
		return &store.TaskError{Kind: te.Kind, Description: te.Description, NoRetry: noRetry}
	}
	kind := ErrorKind
	if errors.Is(err, context.Canceled) {
		kind = CanceledKind
	}
	return &store.TaskError{Kind: kind, Description: err.Error(), NoRetry: noRetry}
}
