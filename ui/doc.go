// Package ui is Stint's web UI: a few static files embedded in the binary
// and served at /ui/ by Handler, next to the HTTP API that api.Server
// mounts it beside. There is no Node.js and no build step: index.html,
// app.css and plain ES modules under static/js/, loaded as they are.
//
// # What the browser runs
//
// The UI is a client of the public HTTP API, /api/v1, and of nothing else:
// it can do what `stint` and curl can do, and no more. static/js/ holds
//
//	app.js      start, routing by the URL's fragment, the header, sign-in,
//	            the #flash messages and the confirmation dialog
//	api.js      fetch() with the token; the Server-Sent Events reader
//	dom.js      building nodes, times ("3 s ago"), progress, stacked bars
//	tasks.js    #/tasks: filters, the table, paging; the rows groups reuse
//	task.js     #/tasks/<id>: state, timings, schedule and retry policy,
//	            progress, why it waits, error, attempts, result, resources,
//	            parent, children, group, retry_of, cancel, retry
//	groups.js   #/groups and #/groups/<id>: counts, tasks, cancel
//	workers.js  #/workers: online or missing, heartbeat age, current tasks
//	resources.js #/resources and #/resources/<name>: holders against the
//	            capacity, the queue's length and oldest wait; one
//	            resource's holders and waiting tasks in queue order
//
// Routes live in the fragment (#/tasks?state=running&offset=20), so the
// server only ever serves index.html and its files. GET /api/v1/me says
// who the viewer is: the header shows the name (or "open mode"), and a
// cancel button appears only for what the viewer may cancel (an admin, or
// the owner under the cancel policy "owner"), and so does the retry button
// of a failed, dropped or canceled task (the API allows a retry to whoever
// may cancel the task). A 401 anywhere shows the
// sign-in form; the token it takes is kept in sessionStorage under
// "stint.token", never in localStorage or a URL, and sent as
// Authorization: Bearer.
//
// # Live updates
//
// EventSource cannot send an Authorization header, so api.js reads
// GET /api/v1/events with fetch() and a streaming body reader and parses
// the event stream itself. Each page follows what it shows (every task, a
// task and its children, a group) and applies each `task` event in place:
// state cells, progress bars, counts. Events carry no worker or times, so
// a change of state is followed by a read of what is shown, at most one
// per 500 ms; a read never shows an older state over a newer event. After
// a reconnection (1 s back-off doubling to 30 s) the page reads again what
// it shows, since events may have been missed. The workers page has no
// events: it reads /workers every 2 s. Events carry no resources, so the
// resources pages read again when a task changes state, at most once a
// second, and every 10 s besides (a new capacity changes no task).
//
// # The DOM contract
//
// Browser tests drive the UI through ids, classes and data attributes
// (section#tasks-page, table#tasks-table with tr[data-task-id][data-state],
// button#cancel-task, button#retry-task, #task-attempts li[data-attempt],
// table#resources-table with tr[data-resource][data-holders][data-waiting],
// section#resource-page[data-resource], dialog#confirm-cancel, #flash,
// ...). They are part
// of the UI's interface: rename one only together with its tests.
//
// # Security
//
// Every answer carries ContentSecurityPolicy (default-src 'self', no
// inline script or style, Trusted Types required), X-Content-Type-Options:
// nosniff and Referrer-Policy: no-referrer. The scripts never parse HTML:
// they build every node with document.createElement and textContent, so
// what a task records (its args, result, error) is always shown as text.
// Files are served with their content type and revalidated by ETag; a
// missing file (a path with an extension, such as /ui/app.jss) is a 404,
// any other path under /ui/ is index.html.
//
//	mux.Handle("GET /ui/", ui.Handler())
package ui
