package api

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/store"
)

// A filterParser reads one query parameter into a TaskFilter.
type filterParser = func(f *store.TaskFilter, value string) error

// taskFilters are the query parameters of GET /tasks. Any other parameter
// is refused: a filter that is silently ignored returns the wrong tasks.
var taskFilters = map[string]filterParser{
	"limit":  func(f *store.TaskFilter, v string) (err error) { f.Limit, err = parseLimit(v); return },
	"offset": func(f *store.TaskFilter, v string) (err error) { f.Offset, err = parseOffset(v); return },
	"ordering": func(f *store.TaskFilter, v string) error {
		for _, o := range store.Orderings {
			if string(o) == v {
				f.Ordering = o
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, joinOrderings())
	},
	"state": func(f *store.TaskFilter, v string) error {
		s, err := parseState(v)
		f.States = append(f.States, s)
		return err
	},
	"state__in": func(f *store.TaskFilter, v string) error {
		for _, part := range strings.Split(v, ",") {
			s, err := parseState(strings.TrimSpace(part))
			if err != nil {
				return err
			}
			f.States = append(f.States, s)
		}
		return nil
	},
	"name":                stringFilter(func(f *store.TaskFilter) *string { return &f.Name }),
	"name__contains":      stringFilter(func(f *store.TaskFilter) *string { return &f.NameContains }),
	"worker":              stringFilter(func(f *store.TaskFilter) *string { return &f.Worker }),
	"owner":               stringFilter(func(f *store.TaskFilter) *string { return &f.Owner }),
	"exclusive_resources": stringFilter(func(f *store.TaskFilter) *string { return &f.ExclusiveResource }),
	"shared_resources":    stringFilter(func(f *store.TaskFilter) *string { return &f.SharedResource }),
	"reserved_resources":  stringFilter(func(f *store.TaskFilter) *string { return &f.ReservedResource }),
	"created_resources":   stringFilter(func(f *store.TaskFilter) *string { return &f.CreatedResource }),
	"parent_task": func(f *store.TaskFilter, v string) (err error) {
		f.ParentTask, err = parseRef(v, apiv1.ParseTaskRef)
		return
	},
	"task_group": func(f *store.TaskFilter, v string) (err error) {
		f.TaskGroup, err = parseRef(v, apiv1.ParseTaskGroupRef)
		return
	},
	"created_at__gte":   timeFilter(func(f *store.TaskFilter) **time.Time { return &f.CreatedGTE }),
	"created_at__lte":   timeFilter(func(f *store.TaskFilter) **time.Time { return &f.CreatedLTE }),
	"started_at__gte":   timeFilter(func(f *store.TaskFilter) **time.Time { return &f.StartedGTE }),
	"started_at__lte":   timeFilter(func(f *store.TaskFilter) **time.Time { return &f.StartedLTE }),
	"finished_at__gte":  timeFilter(func(f *store.TaskFilter) **time.Time { return &f.FinishedGTE }),
	"finished_at__lte":  timeFilter(func(f *store.TaskFilter) **time.Time { return &f.FinishedLTE }),
	"scheduled_at__gte": timeFilter(func(f *store.TaskFilter) **time.Time { return &f.ScheduledGTE }),
	"scheduled_at__lte": timeFilter(func(f *store.TaskFilter) **time.Time { return &f.ScheduledLTE }),
}

// parseTaskFilter turns the query of GET /tasks into a filter. Its errors
// name the parameter at fault.
func parseTaskFilter(rawQuery string) (store.TaskFilter, error) {
	f := store.TaskFilter{Limit: apiv1.DefaultLimit}
	q, err := parseRawQuery(rawQuery)
	if err != nil {
		return f, err
	}
	return f, parseQuery(q, taskFilters, &f)
}

// parseRawQuery parses a query string, refusing one that does not parse
// whole (net/http would silently drop the parts it cannot read).
func parseRawQuery(raw string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("the query string does not parse: %v", err)
	}
	return q, nil
}

// parseQuery applies every parameter of q with its parser, in a stable
// order, refusing unknown parameters and repeated ones.
func parseQuery[F any](q url.Values, parsers map[string]func(*F, string) error, f *F) error {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parse, ok := parsers[k]
		if !ok {
			return fmt.Errorf("%s: unknown query parameter; known: %s", k, knownParams(parsers))
		}
		if len(q[k]) > 1 {
			return fmt.Errorf("%s: given %d times; give it once", k, len(q[k]))
		}
		if err := parse(f, q[k][0]); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func knownParams[F any](parsers map[string]func(*F, string) error) string {
	names := make([]string, 0, len(parsers))
	for k := range parsers {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func stringFilter(field func(*store.TaskFilter) *string) filterParser {
	return func(f *store.TaskFilter, v string) error {
		switch {
		case v == "":
			return fmt.Errorf("is empty")
		case !utf8.ValidString(v):
			return fmt.Errorf("is not valid UTF-8")
		case strings.IndexByte(v, 0) >= 0:
			return fmt.Errorf("contains a NUL character")
		}
		*field(f) = v
		return nil
	}
}

func timeFilter(field func(*store.TaskFilter) **time.Time) filterParser {
	return func(f *store.TaskFilter, v string) error {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("%q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", v)
		}
		*field(f) = &t
		return nil
	}
}

func parseRef(v string, parse func(string) (uuid.UUID, error)) (*uuid.UUID, error) {
	id, err := parse(v)
	if err != nil {
		return nil, err
	}
	return &id, nil
}

func parseState(v string) (store.State, error) {
	s := store.State(v)
	if !s.Valid() {
		names := make([]string, len(store.States))
		for i, k := range store.States {
			names[i] = string(k)
		}
		return s, fmt.Errorf("%q is not a state; states are %s", v, strings.Join(names, ", "))
	}
	return s, nil
}

func parseLimit(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > apiv1.MaxLimit {
		return 0, fmt.Errorf("%q is not a number from 1 to %d", v, apiv1.MaxLimit)
	}
	return n, nil
}

// parseOffset reads an offset from 0 to apiv1.MaxOffset: bounded, so that
// offset + limit cannot overflow (a next link to the first page).
func parseOffset(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > apiv1.MaxOffset {
		return 0, fmt.Errorf("%q is not a number from 0 to %d", v, apiv1.MaxOffset)
	}
	return n, nil
}

func joinOrderings() string {
	names := make([]string, len(store.Orderings))
	for i, o := range store.Orderings {
		names[i] = string(o)
	}
	return strings.Join(names, ", ")
}
