package stint

import (
	"context"
	"fmt"

	"github.com/stint-dev/stint/store"
)

// Resource is a resource as the store sees it: its capacity, its holders
// and how many tasks wait for it.
type Resource = store.Resource

// ResourceFilter selects and orders resources for Client.Resources.
type ResourceFilter = store.ResourceFilter

// ResourcePage is a page of resources.
type ResourcePage = store.ResourcePage

// MaxCapacity is the largest capacity a resource may have.
const MaxCapacity = 1_000_000

// SetCapacity gives the resource name a capacity n (1 to MaxCapacity): at
// most n tasks hold it shared at once; an exclusive holder still holds it
// alone. Tasks on it still start in dispatch order: a task that waits
// because the resource is full is not overtaken by a later task on it.
// The change takes effect at once: raising a capacity starts the next
// waiting tasks, lowering one lets the holders finish (and starts no
// other until they are fewer than n). Capacities are per resource name,
// kept in the database, for every node.
func (c *Client) SetCapacity(ctx context.Context, name string, n int) error {
	if err := checkResourceName(name); err != nil {
		return err
	}
	if n < 1 || n > MaxCapacity {
		return &ValidationError{Index: -1, Field: "capacity", Message: fmt.Sprintf("%d is not a number from 1 to %d", n, MaxCapacity)}
	}
	return c.store.SetCapacity(ctx, name, &n)
}

// RemoveCapacity removes the capacity of the resource name: any number of
// tasks may hold it shared again, and the waiting ones that may start do.
func (c *Client) RemoveCapacity(ctx context.Context, name string) error {
	if err := checkResourceName(name); err != nil {
		return err
	}
	return c.store.SetCapacity(ctx, name, nil)
}

// Resources returns a page of the resources that have holders, waiting
// tasks or a capacity.
func (c *Client) Resources(ctx context.Context, f ResourceFilter) (ResourcePage, error) {
	return c.store.Resources(ctx, f)
}

// Resource returns one resource with its first holders and waiting tasks,
// in queue order; a resource that nothing holds, waits for or bounds has
// zero counts.
func (c *Client) Resource(ctx context.Context, name string) (*Resource, error) {
	if err := checkResourceName(name); err != nil {
		return nil, err
	}
	return c.store.Resource(ctx, name)
}

// checkResourceName refuses a name no task could hold, as a field "name".
func checkResourceName(name string) error {
	if msg := resourceProblem(name); msg != "" {
		return &ValidationError{Index: -1, Field: "name", Message: msg}
	}
	return nil
}
