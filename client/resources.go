package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/stint-dev/stint/apiv1"
)

// ListResources returns one page of resources (GET /resources) that match
// filter, whose keys are the API's query parameters (name,
// name__contains, busy, ordering, limit, offset).
func (c *Client) ListResources(ctx context.Context, filter url.Values) (*apiv1.Page[apiv1.Resource], error) {
	return getPage[apiv1.Resource](ctx, c, "/resources?"+filter.Encode())
}

// Resource returns one resource with its first waiting tasks (GET
// /resources/{name}).
func (c *Client) Resource(ctx context.Context, name string) (*apiv1.Resource, error) {
	var r apiv1.Resource
	if err := c.call(ctx, http.MethodGet, "/resources/"+url.PathEscape(name), nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// SetCapacity sets the capacity of a resource (PUT /resources/{name}); nil
// removes it. It returns the resource.
func (c *Client) SetCapacity(ctx context.Context, name string, capacity *int) (*apiv1.Resource, error) {
	var r apiv1.Resource
	if err := c.call(ctx, http.MethodPut, "/resources/"+url.PathEscape(name), apiv1.ResourceCapacity{Capacity: capacity}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
