package stint

import (
	"github.com/stint-dev/stint/internal/worker"
	"github.com/stint-dev/stint/store"
)

// The kinds of task errors (Task.Error.Kind, and those of non-fatal
// errors): every kind Stint records itself, in one list. A task function's
// own errors have the Kind of their *Error, or ErrorKind. docs/api.md says
// what each means to a client.
const (
	// ErrorKind: the task function returned an error that is not an
	// *Error (the task failed).
	ErrorKind = "error"
	// CanceledKind: the task function returned context.Canceled: it was
	// canceled and stopped cooperatively.
	CanceledKind = "canceled"
	// PanicKind: the task function panicked; the error holds the stack.
	PanicKind = worker.PanicKind
	// UnknownTaskKind: the worker that claimed the task has no task type of
	// its name (a worker of another binary, or of an older release).
	UnknownTaskKind = "unknown_task"
	// TimeoutKind: the run exceeded the timeout of its task type (failed).
	TimeoutKind = "timeout"
	// AbandonedKind: the run did not return within the cancel grace period
	// after its context ended; the worker stopped waiting for it.
	AbandonedKind = "abandoned"
	// ProcessKind: the child process of a run (InChildProcess) ended
	// without a result (it crashed, exited, or was killed by something
	// other than its worker), or it could not be started.
	ProcessKind = "process"
	// KilledKind: the child process did not stop within the cancel grace
	// period after its context ended; the worker killed it.
	KilledKind = "killed"
	// WorkerLostKind: another node found the task's worker lost (its
	// session ended, or it stopped heartbeating) and ended the task
	// dropped (or canceled, if it was being canceled).
	WorkerLostKind = store.WorkerLostKind
	// ShutdownKind: the worker shut down and the task outlived the
	// shutdown grace period (dropped).
	ShutdownKind = worker.ShutdownKind
	// ClaimLostKind: the worker gave the task up because no run of it knew
	// of it: the claim's answer never reached the worker, or an outcome
	// could not be recorded (dropped).
	ClaimLostKind = worker.ClaimLostKind
	// UnrecordableKind: the database refused the run's outcome while it
	// answered; this failure was recorded in its place.
	UnrecordableKind = worker.UnrecordableKind
	// UnstorableResultKind: the engine cannot store the run's result or
	// error (a JSON \u0000 escape on PostgreSQL); this failure was recorded
	// in its place.
	UnstorableResultKind = worker.UnstorableResultKind
	// StoppedWhileRunningKind and StoppedWhileCancelingKind: the embedded
	// engine found the task running (it ends dropped) or canceling (it
	// ends canceled) when it opened its file: the process that ran it had
	// stopped.
	StoppedWhileRunningKind   = store.StoppedWhileRunningKind
	StoppedWhileCancelingKind = store.StoppedWhileCancelingKind
)
