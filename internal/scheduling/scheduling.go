// Package scheduling holds Stint's resource rule in Go: when two tasks
// conflict, and whether a task may start given the tasks queued before it
// and the capacities of its resources.
//
// The rule, for each resource a task names: an exclusive holder takes all
// of the resource, so it runs alone; a shared holder takes one unit of it;
// a capacity N bounds the units, so at most N shared holders run at once
// (no capacity: any number). Tasks start in dispatch order on each
// resource: a task may start when, on every resource it names, no earlier
// incomplete task conflicts with it and, on a resource with a capacity,
// fewer than N earlier incomplete tasks hold it.
//
// It is the reference form of the rule: each engine states it once in its
// own model (PostgreSQL's counted queues in stint_enqueue and
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

// Capacities bound the shared holders of resources, by name: at most
// Capacities[name] tasks hold name at once. A resource that is absent has
// no bound. A nil Capacities bounds nothing.
type Capacities map[string]int

// Runnable reports whether a task may start, given the incomplete tasks
// dispatched before it and the capacities of resources (nil for none): no
// earlier incomplete task conflicts with it, and on each resource with a
// capacity N that it holds shared, fewer than N earlier incomplete tasks
// hold that resource. (The earlier tasks then all hold it shared: an
// exclusive one would conflict.)
func Runnable(task Resources, earlier []Resources, caps Capacities) bool {
	for _, e := range earlier {
		if Conflicts(task, e) {
			return false
		}
	}
	for _, name := range task.Shared {
		n, bounded := caps[name]
		if !bounded {
			continue
		}
		holders := 0
		for _, e := range earlier {
			if held, _ := e.Holds(name); held {
				holders++
			}
		}
		if holders >= n {
			return false
		}
	}
	return true
}

// Fits reports whether holders tasks holding a resource at once, of which
// exclusive hold it exclusively, are within the rule for a resource of
// capacity n (0 for none): an exclusive holder alone, and at most n
// holders when n > 0. The checkers judge recorded intervals with it.
func Fits(holders, exclusive, n int) bool {
	if exclusive > 0 && holders > 1 {
		return false
	}
	return n <= 0 || holders <= n
}
