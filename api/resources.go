package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/store"
)

// resourceQuery is what GET /resources may ask.
type resourceQuery struct {
	filter store.ResourceFilter
	limit  int
	offset int
}

func resourceText(v string) (string, error) {
	switch {
	case v == "":
		return "", errors.New("is empty")
	case !utf8.ValidString(v):
		return "", errors.New("is not valid UTF-8")
	case strings.IndexByte(v, 0) >= 0:
		return "", errors.New("contains a NUL character")
	}
	return v, nil
}

var resourceFilters = map[string]func(*resourceQuery, string) error{
	"limit":  func(q *resourceQuery, v string) (err error) { q.limit, err = parseLimit(v); return },
	"offset": func(q *resourceQuery, v string) (err error) { q.offset, err = parseOffset(v); return },
	"name":   func(q *resourceQuery, v string) (err error) { q.filter.Name, err = resourceText(v); return },
	"name__contains": func(q *resourceQuery, v string) (err error) {
		q.filter.NameContains, err = resourceText(v)
		return
	},
	"busy": func(q *resourceQuery, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		q.filter.Busy = b
		return nil
	},
	"ordering": func(q *resourceQuery, v string) error {
		for _, o := range store.ResourceOrderings {
			if string(o) == v {
				q.filter.Ordering = o
				return nil
			}
		}
		names := make([]string, len(store.ResourceOrderings))
		for i, o := range store.ResourceOrderings {
			names[i] = string(o)
		}
		return fmt.Errorf("%q is not an ordering; orderings are %s", v, strings.Join(names, ", "))
	},
}

// listResources is GET /resources: the resources with holders, waiting
// tasks or a capacity.
func (s *Server) listResources(w http.ResponseWriter, r *http.Request) {
	q := resourceQuery{limit: apiv1.DefaultLimit}
	values, err := parseRawQuery(r.URL.RawQuery)
	if err == nil {
		err = parseQuery(values, resourceFilters, &q)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	q.filter.Limit, q.filter.Offset = q.limit, q.offset
	got, err := s.client.Resources(r.Context(), q.filter)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	p := caller(r)
	out := make([]apiv1.Resource, len(got.Resources))
	for i, res := range got.Resources {
		out[i] = renderResource(res, p, false)
	}
	writeJSON(w, http.StatusOK, page(r, &got.Count, q.offset+len(out) < got.Count, q.limit, q.offset, out))
}

// getResource is GET /resources/{name}.
func (s *Server) getResource(w http.ResponseWriter, r *http.Request) {
	res, err := s.client.Resource(r.Context(), r.PathValue("name"))
	if s.resourceError(w, r, err) {
		return
	}
	writeJSON(w, http.StatusOK, renderResource(res, caller(r), true))
}

// putResource is PUT /resources/{name}: {"capacity": N} or {"capacity":
// null}, by an admin.
func (s *Server) putResource(w http.ResponseWriter, r *http.Request) {
	if !s.adminOnly(w, r, "set capacities") {
		return
	}
	var body struct {
		Capacity jsontext.Value `json:"capacity"`
	}
	if !s.decodeBody(w, r, &body) {
		return
	}
	name := r.PathValue("name")
	var err error
	switch raw := strings.TrimSpace(string(body.Capacity)); raw {
	case "":
		writeError(w, http.StatusBadRequest, "capacity: is required: a number from 1 to %d, or null to remove it", stint.MaxCapacity)
		return
	case "null":
		err = s.client.RemoveCapacity(r.Context(), name)
	default:
		n, perr := strconv.Atoi(raw)
		if perr != nil || n < 1 || n > stint.MaxCapacity {
			writeError(w, http.StatusBadRequest, "capacity: %s is not a number from 1 to %d (or null to remove it)", raw, stint.MaxCapacity)
			return
		}
		err = s.client.SetCapacity(r.Context(), name, n)
	}
	if s.resourceError(w, r, err) {
		return
	}
	res, err := s.client.Resource(r.Context(), name)
	if s.resourceError(w, r, err) {
		return
	}
	writeJSON(w, http.StatusOK, renderResource(res, caller(r), true))
}

// resourceError answers err, if any, and reports whether it did: a bad
// name is the caller's fault.
func (s *Server) resourceError(w http.ResponseWriter, r *http.Request, err error) bool {
	if err == nil {
		return false
	}
	var verr *stint.ValidationError
	if errors.As(err, &verr) {
		writeError(w, http.StatusBadRequest, "%s", verr.Error())
		return true
	}
	s.internalError(w, r, err)
	return true
}

// renderResource renders a resource for the caller p: a user sees every
// count but only its own tasks' hrefs.
func renderResource(res *store.Resource, p principal, withWaiting bool) apiv1.Resource {
	hrefs := func(list []store.ResourceTask) []string {
		out := []string{}
		for _, t := range list {
			if p.admin || t.Owner == p.user {
				out = append(out, apiv1.TaskHref(t.ID))
			}
		}
		return out
	}
	a := apiv1.Resource{
		Name: res.Name, Href: apiv1.ResourceHref(res.Name), Capacity: res.Capacity,
		Holders: apiv1.ResourceHolders{Count: res.Holders, Tasks: hrefs(res.HolderTasks),
			Exclusive: len(res.HolderTasks) > 0 && res.HolderTasks[0].Exclusive},
		Waiting: res.Waiting, OldestWaitingSince: apiv1.NewTime(res.OldestWaitingSince),
	}
	if withWaiting {
		waiting := hrefs(res.WaitingTasks)
		a.WaitingTasks = &waiting
	}
	return a
}
