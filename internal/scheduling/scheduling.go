// Package scheduling holds Stint's resource rule in Go: when two tasks
// conflict, and whether a task may start given the tasks queued before it.
// It is the reference form of the rule: each engine states it once in its
// own model (PostgreSQL's counted queues in stint_dispatch and
// stint_promote, SQLite's ready flags in store/sqlite's sqlEnqueue and
// sqlPromote; docs/architecture.md, "One rule, one model per engine"), and
// every checker (the conformance suite's model, the chaos checker) judges
// what the engines did with this package.
package scheduling

import "slices"

// Resources are what a task holds.
type Resources struct {
	Exclusive []string
	Shared    []string
}

// Holds reports how r holds resource name: held, and whether exclusively.
func (r Resources) Holds(name string) (held, exclusive bool) {
	if slices.Contains(r.Exclusive, name) {
		return true, true
	}
	return slices.Contains(r.Shared, name), false
}

// Compatible reports whether two holders of one resource may run together:
// only when both hold it shared.
func Compatible(aExclusive, bExclusive bool) bool { return !aExclusive && !bExclusive }

// Conflicts reports whether two tasks conflict: they hold a resource in
// common and at least one of them holds it exclusively.
func Conflicts(a, b Resources) bool {
	for _, name := range a.Exclusive {
		if held, _ := b.Holds(name); held {
			return true
		}
	}
	for _, name := range a.Shared {
		if held, excl := b.Holds(name); held && !Compatible(false, excl) {
			return true
		}
	}
	return false
}

// Runnable reports whether a task may start, given the incomplete tasks
// dispatched before it: no earlier incomplete task conflicts with it.
func Runnable(task Resources, earlier []Resources) bool {
	for _, e := range earlier {
		if Conflicts(task, e) {
			return false
		}
	}
	return true
}
