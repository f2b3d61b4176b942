// Package faultproxy puts a fault-injecting TCP proxy between a node and
// PostgreSQL, for tests: Shopify's toxiproxy, run in the test's own
// process, with two toxics of its own that read the PostgreSQL wire
// protocol.
//
// Start a proxy in front of a server, give a node the DSN through it
// (DSN), and break its connections while the test watches the database
// through a direct connection of its own:
//
//   - CutAll closes every connection through the proxy at once, both
//     ways (the client and the server each see a FIN), as a network
//     failure or a restarted middlebox that resets them would; new
//     connections work again at once.
//   - Silence makes every connection silent: what either side sends is
//     dropped, and nothing is closed (no FIN, no RST), as when packets
//     are black-holed. Restore lets new connections and those that
//     stayed idle through the silence work again; a connection that lost
//     bytes in the silence stays silent for good (the proxy's kernel
//     acknowledged them, so TCP will never resend them: the stream has a
//     hole), as one whose peer vanished, until the proxy is closed.
//   - CutAfterReply and SilenceAfterReply break one connection at the
//     moment a chosen reply of the server goes through: the server's
//     work is done and committed, and its answer is lost. See Match.
//   - Latency and Bandwidth slow every connection down (toxiproxy's own
//     latency and bandwidth toxics), until their undo is called.
//
// The proxy listens on 127.0.0.1 only. It needs sslmode=disable on the
// connections it watches for replies (DSN sets it): an encrypted stream
// cannot be read.
package faultproxy
