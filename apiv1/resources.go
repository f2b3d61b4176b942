package apiv1

import "net/url"

// ResourceHref is the href of a resource: its name, percent-encoded as one
// path segment.
func ResourceHref(name string) string { return Prefix + "/resources/" + url.PathEscape(name) }

// Resource is a resource in the resources view: its capacity, the tasks
// that hold it and how many wait for it.
type Resource struct {
	Name string `json:"name"`
	Href string `json:"href"`
	// Capacity bounds the tasks that hold the resource shared at once;
	// null for no bound.
	Capacity *int            `json:"capacity"`
	Holders  ResourceHolders `json:"holders"`
	// Waiting counts the tasks queued for the resource behind the holders.
	Waiting int `json:"waiting"`
	// OldestWaitingSince is when the first of them entered the queue
	// (dispatched, or due when it was scheduled); null when none waits.
	OldestWaitingSince *Time `json:"oldest_waiting_since"`
	// WaitingTasks are the first 100 waiting tasks, in queue order: only
	// in GET /resources/{name}. A user sees only its own tasks' hrefs.
	WaitingTasks *[]string `json:"waiting_tasks,omitempty"`
}

// ResourceHolders are the tasks that hold a resource: their place in its
// queue is granted (they run, are canceling, or wait for another of their
// resources).
type ResourceHolders struct {
	Count int `json:"count"`
	// Exclusive: the one holder holds it exclusively.
	Exclusive bool `json:"exclusive"`
	// Tasks are the hrefs of the first 100 holders, in queue order. A
	// user sees only its own tasks' hrefs.
	Tasks []string `json:"tasks"`
}

// ResourceCapacity is the body of PUT /resources/{name}: a capacity from 1
// to 1,000,000, or null to remove it.
type ResourceCapacity struct {
	Capacity *int `json:"capacity"`
}
