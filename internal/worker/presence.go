package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// DefaultLostCheckInterval is the default of PresenceConfig.LostCheckInterval.
const DefaultLostCheckInterval = time.Second

// PresenceConfig configures a Presence. Zero values take the defaults
// noted.
type PresenceConfig struct {
	// Info is what the process registers as (RegisterWorker).
	Info store.WorkerInfo
	// HeartbeatInterval; default 2 s.
	HeartbeatInterval time.Duration
	// MissingAfter: workers silent this long are lost; default
	// DefaultMissingAfter, more than HeartbeatInterval.
	MissingAfter time.Duration
	// LostCheckInterval: how often to look for lost workers
	// (store.DropLostWorkers); default DefaultLostCheckInterval. On
	// PostgreSQL the check also finds, at once, workers whose database
	// session ended (a process killed), so it runs more often than
	// heartbeats.
	LostCheckInterval time.Duration
	// Running, if set, returns the tasks this process runs: their states
	// come back with each heartbeat.
	Running func() []uuid.UUID
	// Gone, if set, is called after a heartbeat for each task Running
	// returned that is no longer running (canceled, or taken from this
	// process because it was found lost).
	Gone func(id uuid.UUID, state store.State)
	// Dropped, if set, is called with the tasks that this process ended
	// because their workers were lost, from the loop that looks for lost
	// workers: long work belongs in a goroutine of its own.
	Dropped func(ctx context.Context, ids []uuid.UUID)
	Logger  *slog.Logger // default slog.Default()
}

// Presence keeps a registered process in the worker list (heartbeats, and
// registering again when it was removed) and finds the workers that are
// lost, on any node: every worker and API node runs one.
type Presence struct {
	store store.Store
	cfg   PresenceConfig
	log   *slog.Logger
	check chan struct{} // asks for a heartbeat now
}

// NewPresence returns a Presence; Register it, then Run it.
func NewPresence(st store.Store, cfg PresenceConfig) (*Presence, error) {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 2 * time.Second
	}
	if cfg.MissingAfter == 0 {
		cfg.MissingAfter = DefaultMissingAfter
	}
	if cfg.MissingAfter <= cfg.HeartbeatInterval {
		return nil, errors.New("worker: MissingAfter (" + cfg.MissingAfter.String() +
			") must exceed HeartbeatInterval (" + cfg.HeartbeatInterval.String() + ")")
	}
	if cfg.LostCheckInterval <= 0 {
		cfg.LostCheckInterval = DefaultLostCheckInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Presence{store: st, cfg: cfg, log: log, check: make(chan struct{}, 1)}, nil
}

// nameWait is how long Register waits for a name held by a live worker
// to be freed: a worker restarted at once under its name may find its
// predecessor's database session not yet ended.
const nameWait = 2 * time.Second

// Register adds the process to the worker list. A name in use by a live
// worker (store.ErrExists) is tried again for a moment, then refused.
func (p *Presence) Register(ctx context.Context) error {
	deadline := time.Now().Add(nameWait)
	for {
		err := p.store.RegisterWorker(ctx, p.cfg.Info)
		if !errors.Is(err, store.ErrExists) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// CheckNow asks for a heartbeat at once, which reports the states of the
// running tasks: for when task changes may have been missed.
func (p *Presence) CheckNow() {
	select {
	case p.check <- struct{}{}:
	default:
	}
}

// Run heartbeats and looks for lost workers until ctx ends. It does not
// leave the worker list: the caller does, with RemoveWorker, once its
// tasks are wound down.
func (p *Presence) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); p.lostLoop(ctx) }()
	p.heartbeatLoop(ctx)
	<-done
}

// heartbeatLoop refreshes the heartbeat and reports the running tasks that
// are no longer running.
func (p *Presence) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.check:
		}
		var ids []uuid.UUID
		if p.cfg.Running != nil {
			ids = p.cfg.Running()
		}
		states, err := p.store.Heartbeat(ctx, p.cfg.Info.Name, ids)
		if errors.Is(err, store.ErrNotFound) {
			p.log.Warn("this process was removed from the worker list; registering again")
			if err = p.store.RegisterWorker(ctx, p.cfg.Info); err == nil {
				states, err = p.store.Heartbeat(ctx, p.cfg.Info.Name, ids)
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("heartbeat failed", "error", err)
			}
			continue
		}
		if p.cfg.Gone != nil {
			for id, st := range states {
				if st != store.StateRunning {
					p.cfg.Gone(id, st)
				}
			}
		}
	}
}

// lostLoop ends the tasks of the lost workers, every LostCheckInterval.
func (p *Presence) lostLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.LostCheckInterval)
	defer t.Stop()
	// Wall-clock time: it also counts a suspension of the machine, which
	// the monotonic clock may not.
	last := time.Now().Round(0)
	stallAfter := p.cfg.LostCheckInterval + (p.cfg.MissingAfter-p.cfg.HeartbeatInterval)/2
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now().Round(0)
		stalled := now.Sub(last) > stallAfter
		last = now
		if stalled {
			// This process was itself silent for long (it or the machine
			// was stopped): so may the others beside it have been, and
			// they have not heartbeated since. Judge them next round.
			p.log.Warn("lost-worker check was late; not looking for lost workers this round")
			continue
		}
		p.dropLost(ctx)
	}
}

// dropLost ends the tasks of the workers that are lost and removes them
// from the list.
func (p *Presence) dropLost(ctx context.Context) {
	lost, err := p.store.DropLostWorkers(ctx, p.cfg.MissingAfter)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("looking for lost workers failed", "error", err)
		}
		return
	}
	if len(lost.Workers) > 0 {
		p.log.Warn("lost workers removed; their tasks were dropped", "missing_after", p.cfg.MissingAfter,
			"lost_workers", lost.Workers, "tasks", lost.Tasks)
	}
	if len(lost.Tasks) > 0 && p.cfg.Dropped != nil {
		p.cfg.Dropped(ctx, lost.Tasks)
	}
}
