// Package groupcommit gathers concurrent calls into batches: group commit
// in the application.
//
// A database commits one transaction at a time at its end (the write-ahead
// log is flushed, and on PostgreSQL a transaction that sent a NOTIFY takes
// a global lock to queue it). When a service dispatches one task per
// request from many goroutines, each in its own transaction, those commits
// queue behind each other and throughput stops growing with callers. A
// Committer turns the calls that arrive while earlier ones are in flight
// into one call of its function, so that fifty callers pay for a handful of
// commits instead of fifty.
//
// There is no timer: a call that arrives when fewer than MaxRunning batches
// are in flight is run at once, alone, so a lone caller waits for nothing
// but its own statement; calls that arrive while MaxRunning batches are in
// flight queue up, and the next free runner takes them all (up to MaxBatch
// items) as one batch. Under load, batches grow by themselves with the
// number of callers, and shrink back to one when the load goes.
//
// Each caller keeps its own outcome:
//
//   - Its results are its own: the function returns one result per item,
//     in order, and each caller gets the slice of its own items.
//   - Its errors are its own: when a batch of several calls fails, each
//     call is run again alone, so that a bad item fails only its caller.
//     (The function must therefore be all-or-nothing: one transaction.)
//   - It is answered only after its batch returned: a result means the
//     function succeeded for it, so with a function that commits, an
//     acknowledged item is a committed one.
//   - A canceled context abandons only its own call: taken out of the
//     queue if its batch has not started (it is then never run), or, if
//     its batch is in flight, answered at once with the context's error
//     while the batch goes on for the others (its items may then exist; as
//     with any call whose reply is lost, the caller cannot know). A batch
//     whose callers all left is canceled.
//
// Calls are taken in the order they arrived, so items of calls that did
// not overlap in time keep their order: a call that returned before
// another began was in an earlier (or the same, earlier in it) batch.
package groupcommit
