package stint

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/worker"
	"github.com/stint-dev/stint/store"
)

// NodeConfig configures Client.RunNode. Zero values take the defaults
// noted.
type NodeConfig struct {
	// Name is the node's name in the worker list, which its immediate
	// tasks run under (Client.DispatchImmediate); default
	// DefaultWorkerName().
	Name string
	// HeartbeatInterval; default 2 s.
	HeartbeatInterval time.Duration
	// MissingAfter: workers silent this long are lost; default 10 s, more
	// than HeartbeatInterval. Use the same on every node.
	MissingAfter time.Duration
	// LostCheckInterval: how often to look for lost workers; default 1 s.
	LostCheckInterval time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// RunNode keeps a process that runs no Worker, such as an API node, in the
// worker list until ctx ends, and then takes it out: it registers the
// process with no slots, under the name its immediate tasks run under, so
// that a run lost with it is found as a worker's would be; it heartbeats,
// registering again if it was found lost; and, as every worker does, it
// looks for lost workers, ends their tasks, and runs the cleanup hooks of
// the tasks it ended. A process that runs a Worker needs no RunNode: the
// worker does all this. RunNode returns an error only for a bad cfg.
func (c *Client) RunNode(ctx context.Context, cfg NodeConfig) error {
	if cfg.Name == "" {
		cfg.Name = DefaultWorkerName()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	host, _ := os.Hostname()
	p, err := worker.NewPresence(c.store, worker.PresenceConfig{
		Info:              store.WorkerInfo{Name: cfg.Name, Hostname: host, PID: os.Getpid()},
		HeartbeatInterval: cfg.HeartbeatInterval, MissingAfter: cfg.MissingAfter,
		LostCheckInterval: cfg.LostCheckInterval, Logger: log,
		Dropped: func(ctx context.Context, ids []uuid.UUID) {
			go c.runCleanups(context.WithoutCancel(ctx), ids, log)
		},
	})
	if err != nil {
		return err
	}
	// A failure is logged: the first heartbeat registers again.
	if err := p.Register(ctx); err != nil && ctx.Err() == nil {
		log.Warn("registering the node in the worker list failed; retrying at the next heartbeat", "error", err)
	}
	p.Run(ctx)
	if err := c.store.RemoveWorker(context.WithoutCancel(ctx), cfg.Name); err != nil {
		log.Warn("leaving the worker list failed", "error", err)
	}
	return nil
}
