package postgres_test

import (
	"strings"
	"testing"

	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// The first page of a list without filters of parameters is a statement
// without parameters (planned once per connection); every other page keeps
// its values as parameters, so that it is planned for them.
func TestListQueryParameters(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       store.TaskFilter
		args    int
		literal string
	}{
		{"first page", store.TaskFilter{Limit: 21}, 0, " LIMIT 21"},
		{"first page, newest first", store.TaskFilter{Limit: 101, Ordering: store.OrderCreatedDesc}, 0, " LIMIT 101"},
		{"a later page", store.TaskFilter{Limit: 21, Offset: 40}, 2, ""},
		// States are written out anyway (so that the partial indexes of
		// states apply): the plan is for them.
		{"first page of a state", store.TaskFilter{Limit: 21, States: []store.State{store.StateWaiting}}, 0, " LIMIT 21"},
		{"filtered by name", store.TaskFilter{Limit: 21, Name: "x"}, 2, ""},
		{"no limit", store.TaskFilter{}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, args, err := postgres.ListQuery(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(args) != tc.args {
				t.Fatalf("%d arguments %v, want %d: %s", len(args), args, tc.args, q)
			}
			if tc.literal != "" && !strings.HasSuffix(q, tc.literal) {
				t.Fatalf("query does not end with %q: %s", tc.literal, q)
			}
			if tc.literal == "" && strings.Contains(q, "LIMIT ") && !strings.Contains(q, "LIMIT $") {
				t.Fatalf("limit written out in a query with parameters: %s", q)
			}
		})
	}
}
