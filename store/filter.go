package store

import "time"

// FilterField names one condition a TaskFilter can set. Each engine
// translates every field into its SQL once (a switch over FilterTerm.Field
// that refuses a field it does not know); TaskFilter.Terms is the one
// place that says which fields a filter sets, so a new filter is added
// here, in TaskFilter, and once per engine.
type FilterField int

// The fields of a TaskFilter, with the type of FilterTerm.Value for each.
const (
	FilterIDs               FilterField = iota // []uuid.UUID: any of these
	FilterStates                               // []State: any of these
	FilterName                                 // string: equal
	FilterNameContains                         // string: a substring, case-sensitive
	FilterWorker                               // string
	FilterOwner                                // string
	FilterParentTask                           // uuid.UUID
	FilterTaskGroup                            // uuid.UUID
	FilterExclusiveResource                    // string: held exclusively
	FilterSharedResource                       // string: held shared
	FilterReservedResource                     // string: held either way
	FilterCreatedResource                      // string: among created_resources
	FilterCreatedGTE                           // time.Time
	FilterCreatedLTE                           // time.Time
	FilterStartedGTE                           // time.Time
	FilterStartedLTE                           // time.Time
	FilterFinishedGTE                          // time.Time
	FilterFinishedLTE                          // time.Time
	FilterScheduledGTE                         // time.Time
	FilterScheduledLTE                         // time.Time
	filterFields                               // how many there are
)

// FilterFields lists every FilterField, for the engines' tests.
func FilterFields() []FilterField {
	out := make([]FilterField, filterFields)
	for i := range out {
		out[i] = FilterField(i)
	}
	return out
}

// FilterTerm is one condition of a TaskFilter: a field and its value.
type FilterTerm struct {
	Field FilterField
	Value any
}

// Terms returns the conditions f sets, in FilterField order: what the
// engines translate into SQL. Ordering, Limit and Offset are not
// conditions.
func (f TaskFilter) Terms() []FilterTerm {
	var out []FilterTerm
	add := func(field FilterField, set bool, v any) {
		if set {
			out = append(out, FilterTerm{field, v})
		}
	}
	add(FilterIDs, len(f.IDs) > 0, f.IDs)
	add(FilterStates, len(f.States) > 0, f.States)
	add(FilterName, f.Name != "", f.Name)
	add(FilterNameContains, f.NameContains != "", f.NameContains)
	add(FilterWorker, f.Worker != "", f.Worker)
	add(FilterOwner, f.Owner != "", f.Owner)
	add(FilterParentTask, f.ParentTask != nil, deref(f.ParentTask))
	add(FilterTaskGroup, f.TaskGroup != nil, deref(f.TaskGroup))
	add(FilterExclusiveResource, f.ExclusiveResource != "", f.ExclusiveResource)
	add(FilterSharedResource, f.SharedResource != "", f.SharedResource)
	add(FilterReservedResource, f.ReservedResource != "", f.ReservedResource)
	add(FilterCreatedResource, f.CreatedResource != "", f.CreatedResource)
	for _, r := range []struct {
		field FilterField
		t     *time.Time
	}{
		{FilterCreatedGTE, f.CreatedGTE}, {FilterCreatedLTE, f.CreatedLTE},
		{FilterStartedGTE, f.StartedGTE}, {FilterStartedLTE, f.StartedLTE},
		{FilterFinishedGTE, f.FinishedGTE}, {FilterFinishedLTE, f.FinishedLTE},
		{FilterScheduledGTE, f.ScheduledGTE}, {FilterScheduledLTE, f.ScheduledLTE},
	} {
		add(r.field, r.t != nil, deref(r.t))
	}
	return out
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// OnlyStates reports whether f selects by state alone (or selects every
// task): Ordering, Limit and Offset aside, no field but States is set.
// The engines count such a list from the counts per state they maintain
// (CountByState), exactly and without reading the tasks.
func (f TaskFilter) OnlyStates() bool {
	for _, t := range f.Terms() {
		if t.Field != FilterStates {
			return false
		}
	}
	return true
}
