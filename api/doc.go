// Package api serves Stint's HTTP API, /api/v1, as described in
// docs/api.md and in the OpenAPI document it serves at
// /api/v1/openapi.json, plus /metrics, /healthz and /readyz.
//
// A Server validates and dispatches tasks through a stint.Client, reads and
// cancels them through the store, and streams task changes as Server-Sent
// Events. The changes come from the store (LISTEN/NOTIFY on PostgreSQL), so
// a change made through any node reaches a stream open on any node.
//
// Every error the client can cause is a 4xx with a JSON body
// {"detail": "..."} that names the field or parameter at fault; unknown
// query parameters are refused, never ignored.
//
//	srv, err := api.New(api.Config{Store: st, Registry: reg, Engine: "postgresql"})
//	if err != nil { ... }
//	defer srv.Close()
//	http.ListenAndServe("127.0.0.1:7710", srv.Handler())
package api
