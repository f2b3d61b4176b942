// Package store defines the Store interface that persists tasks and
// schedules them, and the types it works with.
//
// A Store keeps, besides the tasks, one queue per resource: an entry for
// every incomplete task that holds the resource, in dispatch order. An entry
// is ready when every earlier entry in its queue is compatible with it (both
// shared); a task is runnable when all its entries are ready. Dispatch and
// Finish only look at the heads of the queues they touch, so their cost does
// not grow with the number of waiting tasks.
//
// Implementations live in sub-packages (postgres) and all pass the
// conformance suite in storetest.
package store
