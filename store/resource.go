package store

import (
	"time"

	"github.com/google/uuid"
)

// ResourceTaskLimit bounds the tasks a Resource lists among its holders,
// and among its waiting tasks.
const ResourceTaskLimit = 100

// ResourceTask is a task in a resource's queue.
type ResourceTask struct {
	ID        uuid.UUID
	Owner     string
	Exclusive bool // it holds (or waits for) the resource exclusively
}

// Resource is the state of one resource: its capacity, the tasks that hold
// it and how many wait for it.
type Resource struct {
	Name string
	// Capacity bounds the tasks that hold the resource shared at once; nil
	// for no bound.
	Capacity *int
	// Holders counts the tasks that hold the resource: their entries in
	// its queue are ready (they run, or may be claimed), including while
	// they are canceling.
	Holders int
	// Waiting counts the tasks queued behind them.
	Waiting int
	// OldestWaitingSince is when the first waiting task entered the queue
	// (its dispatch, or its due time when it was scheduled); nil when
	// none waits.
	OldestWaitingSince *time.Time
	// HolderTasks are the first ResourceTaskLimit holders, in queue
	// order.
	HolderTasks []ResourceTask
	// WaitingTasks are the first ResourceTaskLimit waiting tasks, in queue
	// order: filled by Store.Resource only.
	WaitingTasks []ResourceTask
}

// Busy reports whether the resource has holders or waiting tasks.
func (r *Resource) Busy() bool { return r.Holders > 0 || r.Waiting > 0 }

// ResourceOrdering names the order of Store.Resources.
type ResourceOrdering string

// The orderings Store.Resources knows. Ties are broken by name.
const (
	OrderResourceName        ResourceOrdering = "name"
	OrderResourceNameDesc    ResourceOrdering = "-name"
	OrderResourceWaiting     ResourceOrdering = "waiting"
	OrderResourceWaitingDesc ResourceOrdering = "-waiting"
	OrderResourceHolders     ResourceOrdering = "holders"
	OrderResourceHoldersDesc ResourceOrdering = "-holders"
)

// ResourceOrderings lists every ResourceOrdering.
var ResourceOrderings = []ResourceOrdering{OrderResourceName, OrderResourceNameDesc, OrderResourceWaiting,
	OrderResourceWaitingDesc, OrderResourceHolders, OrderResourceHoldersDesc}

// ResourceFilter selects and orders resources for Store.Resources: those
// that have holders, waiting tasks or a capacity. Zero fields do not
// filter.
type ResourceFilter struct {
	Name         string // equal
	NameContains string // substring, case-sensitive
	Busy         bool   // only resources with holders or waiting tasks

	Ordering ResourceOrdering // default OrderResourceName
	Limit    int              // at most this many; 0 means no limit
	Offset   int
}

// ResourcePage is a page of resources and what the whole selection counts.
type ResourcePage struct {
	Resources []*Resource
	Count     int // resources the filter selects, ignoring Limit and Offset
	Waiting   int // waiting entries of all of them
}
