// Package scheduling holds Stint's resource rule in Go: when two tasks
// conflict, and whether a task may start given the tasks queued before it.
// The PostgreSQL engine states the same rule in SQL (stint_dispatch and
// stint_promote); checkers and the conformance suite use this package to
// verify what the engines did.
package scheduling

import "slices"

// Resources are what a task holds.
type Resources struct {
	Exclusive []string
	Shared    []string
}

// holds reports how r holds resource name: held, and whether exclusively.
func (r Resources) holds(name string) (held, exclusive bool) {
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
		if held, _ := b.holds(name); held {
			return true
		}
	}
	for _, name := range a.Shared {
		if held, excl := b.holds(name); held && !Compatible(false, excl) {
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
