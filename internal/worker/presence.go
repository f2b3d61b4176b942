package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// DefaultLostCheckInterval is the default of PresenceConfig.LostCheckInterval.
const DefaultLostCheckInterval = time.Second

// DefaultCallTimeout is the default bound on each store call of a worker
// and a Presence: a call on a connection that died silently fails after
// it instead of hanging for as long as the kernel waits.
const DefaultCallTimeout = 10 * time.Second

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
	// Gone, if set, is called after a heartbeat for each task held under
	// Info.Name in this process (see Holdings) that is no longer running
	// (canceled, or taken from this process because it was found lost).
	Gone func(id uuid.UUID, state store.State)
	// Stuck, if set, is asked before each heartbeat whether the process
	// is still doing its work: a non-nil error (a claim loop stuck in a
	// call, say) skips the heartbeat, so that the others find the process
	// lost, as they would a dead one, and its tasks proceed elsewhere.
	Stuck func() error
	// CallTimeout bounds each store call; default DefaultCallTimeout.
	// Heartbeats are bounded by the smaller of it and MissingAfter.
	CallTimeout time.Duration
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

	holdings *Holdings  // while Run runs
	giving   sync.Mutex // one give-up at a time
	giveUps  sync.WaitGroup
}

// NewPresence returns a Presence; Register it, then Run it.
func NewPresence(st store.Store, cfg PresenceConfig) (*Presence, error) {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
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
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
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
		err := p.register(ctx)
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

// register registers the process, within the call timeout.
func (p *Presence) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	return p.store.RegisterWorker(ctx, p.cfg.Info)
}

// Run heartbeats and looks for lost workers until ctx ends. It does not
// leave the worker list: the caller does, with RemoveWorker, once its
// tasks are wound down.
func (p *Presence) Run(ctx context.Context) {
	p.holdings = AcquireHoldings(p.cfg.Info.Name)
	defer p.holdings.Release()
	done := make(chan struct{})
	go func() { defer close(done); p.lostLoop(ctx) }()
	p.heartbeatLoop(ctx)
	<-done
	p.giveUps.Wait()
}

// heartbeatLoop refreshes the heartbeat, reports the held tasks that are
// no longer running, and gives up the tasks held under the process's name
// that it does not know of.
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
		if err := p.stuck(); err != nil {
			p.log.Error("not heartbeating: this process is stuck, and other nodes will find it lost", "error", err)
			continue
		}
		reply, err := p.heartbeat(ctx)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("heartbeat failed", "error", err)
			}
			continue
		}
		if p.cfg.Gone != nil {
			for id, st := range reply.States {
				if st != store.StateRunning {
					p.cfg.Gone(id, st)
				}
			}
		}
		if len(reply.Unknown) > 0 {
			p.giveUp(ctx, reply.Unknown)
		}
	}
}

// stuck reports the process stuck (see PresenceConfig.Stuck): so is it
// when a give-up has waited for the claims in flight for more than twice
// the call timeout.
func (p *Presence) stuck() error {
	if p.cfg.Stuck != nil {
		if err := p.cfg.Stuck(); err != nil {
			return err
		}
	}
	return p.holdings.stuck(2 * p.cfg.CallTimeout)
}

// heartbeat heartbeats once, with the tasks held, registering again if
// the process was removed from the list.
func (p *Presence) heartbeat(ctx context.Context) (store.HeartbeatReply, error) {
	// A heartbeat that ends early (the deadline closes its connection)
	// ends the worker's database session too, and with it the worker:
	// never sooner than a worker silent for MissingAfter is lost anyway.
	ctx, cancel := context.WithTimeout(ctx, min(p.cfg.CallTimeout, p.cfg.MissingAfter))
	defer cancel()
	ids := p.holdings.IDs()
	reply, err := p.store.Heartbeat(ctx, p.cfg.Info.Name, ids)
	if errors.Is(err, store.ErrNotFound) {
		p.log.Warn("this process was removed from the worker list; registering again")
		if err = p.store.RegisterWorker(ctx, p.cfg.Info); err == nil {
			reply, err = p.store.Heartbeat(ctx, p.cfg.Info.Name, ids)
		}
	}
	return reply, err
}

// giveUp ends, in a goroutine of its own, the tasks held under the
// process's name that no run of it knows of (see Holdings.giveUp); at most
// one give-up runs at a time, and a heartbeat while one runs skips it.
func (p *Presence) giveUp(ctx context.Context, unknown []store.HeldTask) {
	if !p.giving.TryLock() {
		return
	}
	p.giveUps.Add(1)
	go func() {
		defer p.giveUps.Done()
		defer p.giving.Unlock()
		cctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
		defer cancel()
		ended, err := p.holdings.giveUp(cctx, p.store, p.cfg.Info.Name, unknown, p.log)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("giving up tasks unknown to this process failed; trying again at the next heartbeat", "error", err)
			}
			return
		}
		if len(ended) > 0 && p.cfg.Dropped != nil {
			p.cfg.Dropped(ctx, ended)
		}
	}()
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
	cctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	lost, err := p.store.DropLostWorkers(cctx, p.cfg.MissingAfter)
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
