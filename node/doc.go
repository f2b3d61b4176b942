// Package node runs one whole Stint process: the HTTP API, a worker, or
// both, on one store, under one name among the nodes. It is what `stint
// serve`, `stint api` and `stint worker` run, and what an application that
// builds its own binary with its own task types calls:
//
//	ln, err := net.Listen("tcp", "127.0.0.1:7710")
//	if err != nil { ... }
//	err = node.Run(ctx, node.Config{
//		Store:    st,
//		Registry: reg, // the application's task types
//		API:      &node.API{Listener: ln, Server: api.Config{AllowOpen: true}},
//		Worker:   &stint.WorkerConfig{Concurrency: 8},
//		Retain:   30 * 24 * time.Hour,
//	})
//
// A node's one name (Config.Name) is its worker's name and the name its
// API's immediate tasks run under; a node without a worker still keeps
// itself in the worker list under it, with no slots, so that an immediate
// task lost with the process ends dropped, and it looks for lost workers
// as every worker does. The node serves Prometheus metrics: the API at
// /metrics, a node without one on Config.MetricsListener; and it purges old
// final tasks when Config.Retain says so.
//
// Run returns when ctx ends, after the node stopped in order: the HTTP
// servers finish the requests in flight, the worker shuts down (its
// ShutdownGrace), and the node leaves the worker list.
package node
