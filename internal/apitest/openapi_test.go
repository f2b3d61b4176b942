package apitest

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
)

// The tests read the document from its file rather than through package
// api, so that they do not depend on the handlers compiling.
const documentPath = "../../api/openapi.json"

// base is the server the requests are built for: the route lookup must
// ignore scheme, host and port.
const base = "http://127.0.0.1:7710"

func loadDocument(t *testing.T) []byte {
	t.Helper()
	doc, err := os.ReadFile(documentPath)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func newValidator(t *testing.T) *Validator {
	t.Helper()
	v, err := NewValidator(loadDocument(t))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The eight states of DESIGN §2.
var states = []string{"scheduled", "waiting", "running", "canceling", "completed", "failed", "canceled", "skipped", "dropped"}

func TestDocumentLoads(t *testing.T) {
	v := newValidator(t)
	if v.doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", v.doc.OpenAPI)
	}
	if v.doc.Info.Title != "Stint" || v.doc.Info.Version != "1" {
		t.Errorf("info = %q %q, want Stint 1", v.doc.Info.Title, v.doc.Info.Version)
	}
	if len(v.doc.Servers) != 1 || v.doc.Servers[0].URL != "/" {
		t.Errorf("servers = %v, want one with url /", v.doc.Servers)
	}

	want := []string{
		"GET /api/v1/events", "GET /api/v1/openapi.json", "GET /api/v1/status",
		"GET /api/v1/tasks", "POST /api/v1/tasks", "GET /api/v1/tasks/{id}", "PATCH /api/v1/tasks/{id}",
		"DELETE /api/v1/tasks/{id}", "POST /api/v1/tasks/{id}/retry", "POST /api/v1/tasks/purge",
		"GET /api/v1/task-groups", "POST /api/v1/task-groups", "GET /api/v1/task-groups/{id}", "PATCH /api/v1/task-groups/{id}",
		"GET /api/v1/workers", "GET /api/v1/workers/{name}", "GET /api/v1/me",
		"GET /api/v1/resources", "GET /api/v1/resources/{name}", "PUT /api/v1/resources/{name}",
		"GET /healthz", "GET /metrics", "GET /readyz",
	}
	var got []string
	ids := map[string]string{}
	for path, item := range v.doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + path
			got = append(got, key)
			if op.OperationID == "" || op.Summary == "" || len(op.Tags) == 0 {
				t.Errorf("%s: operationId, summary and tags are required", key)
			}
			if other, dup := ids[op.OperationID]; dup {
				t.Errorf("operationId %q of %s is also that of %s", op.OperationID, key, other)
			}
			ids[op.OperationID] = key
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("operations:\n got %q\nwant %q", got, want)
	}

	enum := v.doc.Components.Schemas["TaskState"].Value.Enum
	var gotStates []string
	for _, e := range enum {
		gotStates = append(gotStates, e.(string))
	}
	if !slices.Equal(gotStates, states) {
		t.Errorf("TaskState enum = %q, want %q", gotStates, states)
	}
	for _, s := range states {
		if final := apiv1.FinalState(s); final != slices.Contains([]string{"completed", "failed", "canceled", "skipped", "dropped"}, s) {
			t.Errorf("apiv1.FinalState(%q) = %v, not as in DESIGN §2", s, final)
		}
	}
}

func TestNewValidatorRejectsBadDocuments(t *testing.T) {
	for name, doc := range map[string]string{
		"not JSON":       `{"openapi": `,
		"no info":        `{"openapi": "3.0.3", "paths": {}}`,
		"bad reference":  `{"openapi": "3.0.3", "info": {"title": "x", "version": "1"}, "paths": {"/a": {"get": {"responses": {"200": {"description": "x", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Nope"}}}}}}}}}`,
		"unknown format": `{"openapi": "3.0.3", "info": {"title": "x", "version": "1"}, "paths": {"/a": {"get": {"responses": {"200": {"description": "x", "content": {"application/json": {"schema": {"type": "string", "format": "date_time"}}}}}}}}}`,
	} {
		_, err := NewValidator([]byte(doc))
		if err == nil {
			t.Errorf("%s: NewValidator accepted it", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
}

// schemaTypes pairs the schemas of the document with the apiv1 types they
// describe.
var schemaTypes = map[string]reflect.Type{
	"Error":            reflect.TypeFor[apiv1.Error](),
	"DispatchTask":     reflect.TypeFor[apiv1.DispatchTask](),
	"TaskRef":          reflect.TypeFor[apiv1.TaskRef](),
	"PatchTask":        reflect.TypeFor[apiv1.PatchTask](),
	"Task":             reflect.TypeFor[apiv1.Task](),
	"TaskWorker":       reflect.TypeFor[apiv1.TaskWorker](),
	"TaskError":        reflect.TypeFor[apiv1.TaskError](),
	"ProgressReport":   reflect.TypeFor[apiv1.ProgressReport](),
	"Blocker":          reflect.TypeFor[apiv1.Blocker](),
	"TaskPage":         reflect.TypeFor[apiv1.Page[apiv1.Task]](),
	"Worker":           reflect.TypeFor[apiv1.Worker](),
	"WorkerPage":       reflect.TypeFor[apiv1.Page[apiv1.Worker]](),
	"Resource":         reflect.TypeFor[apiv1.Resource](),
	"ResourceHolders":  reflect.TypeFor[apiv1.ResourceHolders](),
	"ResourceCapacity": reflect.TypeFor[apiv1.ResourceCapacity](),
	"ResourcePage":     reflect.TypeFor[apiv1.Page[apiv1.Resource]](),
	"Status":           reflect.TypeFor[apiv1.Status](),
	"DatabaseStatus":   reflect.TypeFor[apiv1.DatabaseStatus](),
	"WorkersStatus":    reflect.TypeFor[apiv1.WorkersStatus](),
	"TasksStatus":      reflect.TypeFor[apiv1.TasksStatus](),
	"TaskEvent":        reflect.TypeFor[apiv1.TaskEvent](),
	"TaskGroup":        reflect.TypeFor[apiv1.TaskGroup](),
	"TaskGroupRef":     reflect.TypeFor[apiv1.TaskGroupRef](),
	"TaskGroupPage":    reflect.TypeFor[apiv1.Page[apiv1.TaskGroup]](),
	"CreateTaskGroup":  reflect.TypeFor[apiv1.CreateTaskGroup](),
	"PatchTaskGroup":   reflect.TypeFor[apiv1.PatchTaskGroup](),
	"PurgeTasks":       reflect.TypeFor[apiv1.PurgeTasks](),
	"Me":               reflect.TypeFor[apiv1.Me](),
	"Retry":            reflect.TypeFor[apiv1.Retry](),
	"Attempt":          reflect.TypeFor[apiv1.Attempt](),
}

// TestSchemasMatchAPIV1 compares each object schema with its Go type field
// by field: the same names, required exactly when the field is not
// omitempty, nullable exactly when the server may write null, and a type
// that fits the Go type.
func TestSchemasMatchAPIV1(t *testing.T) {
	v := newValidator(t)
	typeSchemas := map[reflect.Type]*openapi3.Schema{}
	for name, typ := range schemaTypes {
		ref := v.doc.Components.Schemas[name]
		if ref == nil {
			t.Fatalf("the document has no schema %s", name)
		}
		typeSchemas[typ] = ref.Value
	}
	for name, ref := range v.doc.Components.Schemas {
		if s := ref.Value; s.Type.Is("object") && len(s.Properties) > 0 && schemaTypes[name] == nil {
			t.Errorf("schema %s: no apiv1 type in schemaTypes to compare it with", name)
		}
	}
	for name, typ := range schemaTypes {
		schema := typeSchemas[typ]
		t.Run(name, func(t *testing.T) {
			if !schema.Type.Is("object") {
				t.Errorf("type %v, want object", schema.Type.Slice())
			}
			if schema.AdditionalProperties.Has == nil || *schema.AdditionalProperties.Has {
				t.Errorf("additionalProperties must be false")
			}
			var names, required []string
			for i := range typ.NumField() {
				f := typ.Field(i)
				tag := f.Tag.Get("json")
				jsonName, opts, _ := strings.Cut(tag, ",")
				if jsonName == "-" || !f.IsExported() {
					continue
				}
				if jsonName == "" {
					jsonName = f.Name
				}
				names = append(names, jsonName)
				omitempty := strings.Contains(opts, "omitempty")
				if !omitempty {
					required = append(required, jsonName)
				}
				prop := schema.Properties[jsonName]
				if prop == nil {
					continue // reported below
				}
				checkField(t, jsonName, f.Type, omitempty, prop.Value, typeSchemas)
			}
			var props []string
			for p := range schema.Properties {
				props = append(props, p)
			}
			sort.Strings(names)
			sort.Strings(props)
			if !slices.Equal(names, props) {
				t.Errorf("properties %q, but apiv1 has the fields %q", props, names)
			}
			sort.Strings(required)
			gotRequired := slices.Sorted(slices.Values(schema.Required))
			if !slices.Equal(required, gotRequired) {
				t.Errorf("required %q, want the fields that are not omitempty: %q", gotRequired, required)
			}
		})
	}
}

var (
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	timeType       = reflect.TypeFor[apiv1.Time]()
	uuidType       = reflect.TypeFor[uuid.UUID]()
)

// checkField checks the schema of one field against its Go type.
func checkField(t *testing.T, name string, typ reflect.Type, omitempty bool, s *openapi3.Schema, typeSchemas map[reflect.Type]*openapi3.Schema) {
	t.Helper()
	wantNullable := typ == rawMessageType || (typ.Kind() == reflect.Pointer && !omitempty)
	if s.Nullable != wantNullable {
		t.Errorf("%s: nullable %v, want %v (Go type %v)", name, s.Nullable, wantNullable, typ)
	}
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	// A nullable reference is written {"nullable": true, "allOf": [{"$ref"}]}.
	if len(s.AllOf) == 1 && s.Type.IsEmpty() {
		s = s.AllOf[0].Value
	}
	switch {
	case typ == rawMessageType:
		if !s.Type.IsEmpty() {
			t.Errorf("%s: type %v, want none: any JSON value", name, s.Type.Slice())
		}
	case typ == timeType:
		if !s.Type.Is("string") || s.Format != "date-time" {
			t.Errorf("%s: want a string of format date-time", name)
		}
	case typ == uuidType:
		if !s.Type.Is("string") || s.Format != "uuid" {
			t.Errorf("%s: want a string of format uuid", name)
		}
	case typeSchemas[typ] != nil:
		if s != typeSchemas[typ] {
			t.Errorf("%s: want a reference to the schema of %v", name, typ)
		}
	default:
		want := map[reflect.Kind]string{
			reflect.String: "string", reflect.Bool: "boolean",
			reflect.Int: "integer", reflect.Int64: "integer", reflect.Float64: "number",
			reflect.Slice: "array", reflect.Map: "object",
		}[typ.Kind()]
		if want == "" || !s.Type.Is(want) {
			t.Errorf("%s: type %v does not fit Go type %v", name, s.Type.Slice(), typ)
			return
		}
		if typ.Kind() == reflect.Slice {
			checkField(t, name+"[]", typ.Elem(), true, s.Items.Value, typeSchemas)
		}
		if typ.Kind() == reflect.Map {
			if s.AdditionalProperties.Schema == nil {
				t.Errorf("%s: want additionalProperties with a schema", name)
				return
			}
			checkField(t, name+"{}", typ.Elem(), true, s.AdditionalProperties.Schema.Value, typeSchemas)
		}
	}
}

// Samples, as the server writes them.

var (
	taskID   = uuid.MustParse("01964c1e-5f7a-7c3e-9a4b-2d1e0f3c4b5a")
	parentID = uuid.MustParse("01964c1e-0000-7000-8000-000000000001")
	childID  = uuid.MustParse("01964c1e-0000-7000-8000-000000000002")
	groupID  = uuid.MustParse("01964c1e-0000-7000-8000-000000000003")
	otherID  = uuid.MustParse("01964c1e-0000-7000-8000-000000000004")
	now      = apiv1.Time{Time: time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC)}
)

func ptr[T any](v T) *T { return &v }

// fullTask has every field set, blocked_by included.
func fullTask() apiv1.Task {
	return apiv1.Task{
		ID: taskID, Href: apiv1.TaskHref(taskID), Name: "repo.sync", State: "waiting",
		Args: json.RawMessage(`{"repo": 42, "deep": [1, "two", null]}`), Owner: "alice",
		CreatedAt: now, UpdatedAt: now,
		UnblockedAt: &now, StartedAt: &now, FinishedAt: &now,
		ExclusiveResources: []string{"repo:42"}, SharedResources: []string{"/api/v1/repositories/1"},
		Versions:   map[string]string{"myplugin": "1.4.0"},
		Worker:     &apiv1.TaskWorker{Name: "4242@host1", Missing: true, LastHeartbeat: &now},
		ParentTask: ptr(apiv1.TaskHref(parentID)),
		ChildTasks: []string{apiv1.TaskHref(childID)},
		TaskGroup:  ptr(apiv1.TaskGroupHref(groupID)),
		Result:     json.RawMessage(`[1, 2.5, "x", true, null, {"a": {}}]`),
		Error:      &apiv1.TaskError{Kind: "panic", Description: "boom", Traceback: "goroutine 1 [running]:\n..."},
		NonFatalErrors: []apiv1.TaskError{
			{Kind: "warning", Description: "slow mirror"},
			{Kind: "retry", Description: "again", Traceback: "trace"},
		},
		ProgressReports: []apiv1.ProgressReport{
			{Message: "Downloading", Code: "sync.download", State: "running", Total: ptr(int64(10)), Done: 3, Suffix: "MB"},
			{Message: "Indexing", Code: "sync.index", State: "waiting", Done: 0},
		},
		CreatedResources: []string{"/api/v1/repositories/42/versions/2"},
		ScheduledAt:      &now,
		Retry:            &apiv1.Retry{MaxAttempts: 3, InitialDelay: "1s", MaxDelay: "10m0s", Multiplier: 2, Jitter: 0.1, Dropped: true},
		Attempts: []apiv1.Attempt{
			{Number: 1, State: "failed", StartedAt: &now, FinishedAt: &now, Worker: "4242@host1",
				Error: &apiv1.TaskError{Kind: "error", Description: "mirror down", NoRetry: false}},
			{Number: 2, State: "waiting", Worker: ""},
		},
		UniqueKey: ptr("sync-42"),
		RetryOf:   ptr(apiv1.TaskHref(otherID)),
		BlockedBy: &[]apiv1.Blocker{{Task: apiv1.TaskHref(otherID), Resource: "repo:42"}},
	}
}

// minimalTask has every pointer nil and every list empty, as the server
// writes a task that never ran.
func minimalTask() apiv1.Task {
	return apiv1.Task{
		ID: taskID, Href: apiv1.TaskHref(taskID), Name: "stint.noop", State: "canceled",
		Args: json.RawMessage(`{}`), Owner: "",
		CreatedAt: now, UpdatedAt: now,
		ExclusiveResources: []string{}, SharedResources: []string{},
		Versions: map[string]string{}, ChildTasks: []string{},
		Result: json.RawMessage(`null`), NonFatalErrors: []apiv1.TaskError{},
		ProgressReports: []apiv1.ProgressReport{}, CreatedResources: []string{},
		Attempts: []apiv1.Attempt{},
	}
}

func sampleWorker() apiv1.Worker {
	return apiv1.Worker{
		Name: "4242@host1", Href: apiv1.WorkerHref("4242@host1"), Hostname: "host1", PID: 4242,
		Versions: map[string]string{"stint": "0.1.0"}, Concurrency: 8,
		StartedAt: now, LastHeartbeat: now, Missing: false,
		CurrentTasks: []string{apiv1.TaskHref(taskID)},
	}
}

// sampleResource is a full resource with a capacity, as GET
// /resources/{name} writes it.
func sampleResource() apiv1.Resource {
	return apiv1.Resource{
		Name: "remote/github", Href: apiv1.ResourceHref("remote/github"), Capacity: ptr(4),
		Holders: apiv1.ResourceHolders{Count: 4, Tasks: []string{apiv1.TaskHref(taskID)}},
		Waiting: 2, OldestWaitingSince: &now, WaitingTasks: &[]string{apiv1.TaskHref(otherID)},
	}
}

// idleResource is what GET /resources/{name} answers for a name nothing
// uses.
func idleResource() apiv1.Resource {
	return apiv1.Resource{
		Name: "repo:1", Href: apiv1.ResourceHref("repo:1"),
		Holders: apiv1.ResourceHolders{Tasks: []string{}}, WaitingTasks: &[]string{},
	}
}

func sampleStatus() apiv1.Status {
	var s apiv1.Status
	s.Version, s.Engine = "0.1.0", "postgresql"
	s.Database.Reachable = true
	s.Workers.Online, s.Workers.Missing = 2, 1
	s.Tasks.Waiting, s.Tasks.Running, s.Tasks.Canceling = 5, 2, 0
	return s
}

func sampleEvent() apiv1.TaskEvent {
	return apiv1.TaskEvent{
		Task: apiv1.TaskHref(taskID), ID: taskID, Name: "stint.sleep", State: "running",
		TaskGroup: ptr(apiv1.TaskGroupHref(groupID)), ProgressReports: fullTask().ProgressReports, UpdatedAt: now,
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit marshals v, lets change edit it as a generic JSON object, and
// marshals it again.
func edit(t *testing.T, v any, change func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(mustJSON(t, v), &m); err != nil {
		t.Fatal(err)
	}
	change(m)
	return mustJSON(t, m)
}

func jsonHeader() http.Header {
	return http.Header{"Content-Type": {"application/json"}}
}

// answer is one response to validate.
type answer struct {
	name   string
	method string
	path   string
	status int
	header http.Header
	body   []byte
}

func (a answer) validate(v *Validator) error {
	req := httptest.NewRequest(a.method, base+a.path, nil)
	header := a.header
	if header == nil {
		header = jsonHeader()
	}
	return v.ValidateResponse(req, a.status, header, a.body)
}

func TestValidResponses(t *testing.T) {
	v := newValidator(t)
	doc := loadDocument(t)
	taskPath := "/api/v1/tasks/" + taskID.String()
	errBody := func(detail string) []byte { return mustJSON(t, apiv1.Error{Detail: detail}) }
	next, prev := "/api/v1/tasks?limit=2&offset=4", "/api/v1/tasks?limit=2&offset=0"
	running := minimalTask()
	running.State = "running"
	waitingForWorker := minimalTask()
	waitingForWorker.State = "waiting"
	waitingForWorker.BlockedBy = &[]apiv1.Blocker{}
	leftWorker := fullTask()
	leftWorker.Worker.LastHeartbeat = nil
	dispatched := http.Header{"Content-Type": {"application/json"}, "Location": {apiv1.TaskHref(taskID)}}

	for _, a := range []answer{
		{"full task", "GET", taskPath, 200, nil, mustJSON(t, fullTask())},
		{"minimal task", "GET", taskPath, 200, nil, mustJSON(t, minimalTask())},
		{"waiting for a worker only", "GET", taskPath, 200, nil, mustJSON(t, waitingForWorker)},
		{"worker that left", "GET", taskPath, 200, nil, mustJSON(t, leftWorker)},
		{"trailing slash", "GET", taskPath + "/", 200, nil, mustJSON(t, minimalTask())},
		{"charset", "GET", taskPath, 200, http.Header{"Content-Type": {"application/json; charset=utf-8"}}, mustJSON(t, minimalTask())},
		{"query string", "GET", taskPath + "?x=1", 200, nil, mustJSON(t, minimalTask())},
		{"bad id", "GET", "/api/v1/tasks/nope", 400, nil, errBody(`id: "nope" is not a UUID`)},
		{"no task", "GET", taskPath, 404, nil, errBody("no task")},
		{"store down", "GET", taskPath, 503, nil, errBody("the task store could not answer; try again")},
		{"cancel", "PATCH", taskPath, 200, nil, mustJSON(t, running)},
		{"cancel final", "PATCH", taskPath, 409, nil, errBody("task is completed already")},
		{"cancel bad body", "PATCH", taskPath, 400, nil, errBody("state: must be canceled")},
		{"dispatch", "POST", "/api/v1/tasks", 202, dispatched, mustJSON(t, apiv1.TaskRef{Task: apiv1.TaskHref(taskID)})},
		{"dispatch trailing slash", "POST", "/api/v1/tasks/", 202, dispatched, mustJSON(t, apiv1.TaskRef{Task: apiv1.TaskHref(taskID)})},
		{"dispatch deduplicated", "POST", "/api/v1/tasks", 202, dispatched, mustJSON(t, apiv1.TaskRef{Task: apiv1.TaskHref(taskID), Deduplicated: true})},
		{"retry", "POST", "/api/v1/tasks/" + taskID.String() + "/retry", 202, dispatched, mustJSON(t, apiv1.TaskRef{Task: apiv1.TaskHref(taskID)})},
		{"dispatch bad", "POST", "/api/v1/tasks", 400, nil, errBody("name: unknown task type")},
		{"dispatch too large", "POST", "/api/v1/tasks", 413, nil, errBody("the body is larger than 1048576 bytes")},
		{"task page", "GET", "/api/v1/tasks?limit=2&offset=2", 200, nil, mustJSON(t, apiv1.Page[apiv1.Task]{
			Count: new(7), Next: &next, Previous: &prev, Results: []apiv1.Task{fullTask(), minimalTask()}})},
		{"empty task page", "GET", "/api/v1/tasks", 200, nil, mustJSON(t, apiv1.Page[apiv1.Task]{Results: []apiv1.Task{}})},
		{"bad filter", "GET", "/api/v1/tasks?limit=0", 400, nil, errBody("limit: must be from 1 to 1000")},
		{"worker page", "GET", "/api/v1/workers?missing=false", 200, nil, mustJSON(t, apiv1.Page[apiv1.Worker]{
			Count: new(1), Results: []apiv1.Worker{sampleWorker()}})},
		{"worker", "GET", "/api/v1/workers/4242@host1", 200, nil, mustJSON(t, sampleWorker())},
		{"no worker", "GET", "/api/v1/workers/nobody", 404, nil, errBody(`no worker "nobody"`)},
		{"status", "GET", "/api/v1/status", 200, nil, mustJSON(t, sampleStatus())},
		{"resource page", "GET", "/api/v1/resources?busy=true&ordering=-waiting", 200, nil, mustJSON(t, apiv1.Page[apiv1.Resource]{
			Count: new(2), Results: []apiv1.Resource{
				func() apiv1.Resource { r := sampleResource(); r.WaitingTasks = nil; return r }(),
				{Name: "repo:1", Href: apiv1.ResourceHref("repo:1"), Holders: apiv1.ResourceHolders{Count: 1, Exclusive: true, Tasks: []string{}}},
			}})},
		{"resource", "GET", "/api/v1/resources/repo:1", 200, nil, mustJSON(t, sampleResource())},
		{"idle resource", "GET", "/api/v1/resources/repo:1", 200, nil, mustJSON(t, idleResource())},
		{"resource bad name", "GET", "/api/v1/resources/repo:1", 400, nil, errBody("name: resource is 1025 bytes, more than 1024")},
		{"set capacity", "PUT", "/api/v1/resources/repo:1", 200, nil, mustJSON(t, sampleResource())},
		{"set capacity bad", "PUT", "/api/v1/resources/repo:1", 400, nil, errBody("capacity: 0 is not a number from 1 to 1000000 (or null to remove it)")},
		{"set capacity as a user", "PUT", "/api/v1/resources/repo:1", 403, nil, errBody("only admins may set capacities")},
		{"full resource blocker", "GET", taskPath, 200, nil, edit(t, fullTask(), func(m map[string]any) {
			m["blocked_by"] = []any{
				map[string]any{"task": apiv1.TaskHref(otherID), "resource": "remote/github", "reason": "resource full (4 of 4)"},
				map[string]any{"resource": "remote/x", "reason": "resource full (1 of 1)"},
			}
		})},
		{"openapi", "GET", "/api/v1/openapi.json", 200, nil, doc},
		{"events", "GET", "/api/v1/events?task=" + taskID.String(), 200, http.Header{"Content-Type": {"text/event-stream"}},
			[]byte(": connected\n\nevent: task\ndata: " + string(mustJSON(t, sampleEvent())) + "\n\n")},
		{"unknown path", "GET", "/api/v1/nope", 404, nil, errBody("no such endpoint: GET /api/v1/nope")},
		{"unknown method", "DELETE", "/api/v1/status", 404, nil, errBody("no such endpoint: DELETE /api/v1/status")},
		{"events bad id", "GET", "/api/v1/events?task=nope", 400, nil, errBody("task: bad id")},
		{"healthz", "GET", "/healthz", 200, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, []byte("ok\n")},
		{"readyz", "GET", "/readyz", 200, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, []byte("ready\n")},
		{"not ready", "GET", "/readyz", 503, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, []byte("database unreachable\n")},
		{"metrics", "GET", "/metrics", 200, http.Header{"Content-Type": {"text/plain; version=0.0.4; charset=utf-8; escaping=underscores"}},
			[]byte("# HELP x y\n# TYPE x counter\nx 1\n")},
	} {
		if err := a.validate(v); err != nil {
			t.Errorf("%s: %v", a.name, err)
		}
	}

	for name, ev := range map[string][]byte{
		"event":          mustJSON(t, sampleEvent()),
		"event no group": mustJSON(t, apiv1.TaskEvent{Task: apiv1.TaskHref(taskID), ID: taskID, Name: "x", State: "completed", ProgressReports: []apiv1.ProgressReport{}, UpdatedAt: now}),
	} {
		if err := v.ValidateSchema("TaskEvent", ev); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestInvalidResponses(t *testing.T) {
	v := newValidator(t)
	taskPath := "/api/v1/tasks/" + taskID.String()
	task := fullTask()
	set := func(key string, value any) func(map[string]any) {
		return func(m map[string]any) { m[key] = value }
	}
	del := func(key string) func(map[string]any) {
		return func(m map[string]any) { delete(m, key) }
	}

	for _, a := range []answer{
		{"stray field", "GET", taskPath, 200, nil, edit(t, task, set("extra", 1))},
		{"stray field in worker", "GET", taskPath, 200, nil, edit(t, task, func(m map[string]any) {
			m["worker"].(map[string]any)["pid"] = 1
		})},
		{"wrong type", "GET", taskPath, 200, nil, edit(t, task, set("name", 5))},
		{"wrong type of progress done", "GET", taskPath, 200, nil, edit(t, task, func(m map[string]any) {
			m["progress_reports"].([]any)[0].(map[string]any)["done"] = "3"
		})},
		{"fractional integer", "GET", taskPath, 200, nil, edit(t, task, func(m map[string]any) {
			m["progress_reports"].([]any)[0].(map[string]any)["done"] = 3.5
		})},
		{"missing required", "GET", taskPath, 200, nil, edit(t, task, del("result"))},
		{"missing required in error", "GET", taskPath, 200, nil, edit(t, task, func(m map[string]any) {
			delete(m["error"].(map[string]any), "kind")
		})},
		{"null list", "GET", taskPath, 200, nil, edit(t, task, set("exclusive_resources", nil))},
		{"null map", "GET", taskPath, 200, nil, edit(t, task, set("versions", nil))},
		{"null timestamp", "GET", taskPath, 200, nil, edit(t, task, set("created_at", nil))},
		{"null blocked_by", "GET", taskPath, 200, nil, edit(t, task, set("blocked_by", nil))},
		{"unknown state", "GET", taskPath, 200, nil, edit(t, task, set("state", "paused"))},
		{"timestamp without microseconds", "GET", taskPath, 200, nil, edit(t, task, set("updated_at", "2026-01-02T15:04:05Z"))},
		{"timestamp not UTC", "GET", taskPath, 200, nil, edit(t, task, set("updated_at", "2026-01-02T15:04:05.123456+01:00"))},
		{"bad uuid", "GET", taskPath, 200, nil, edit(t, task, set("id", "42"))},
		{"href not a path", "GET", taskPath, 200, nil, edit(t, task, set("href", "http://x/api/v1/tasks/"+taskID.String()))},
		{"group href as task href", "GET", taskPath, 200, nil, edit(t, task, set("task_group", apiv1.TaskHref(groupID)))},
		{"undocumented status", "GET", taskPath, 418, nil, mustJSON(t, apiv1.Error{Detail: "teapot"})},
		{"undocumented status of dispatch", "POST", "/api/v1/tasks", 201, nil, mustJSON(t, apiv1.TaskRef{Task: apiv1.TaskHref(taskID)})},
		{"dispatch without Location", "POST", "/api/v1/tasks", 202, nil, mustJSON(t, apiv1.TaskRef{Task: apiv1.TaskHref(taskID)})},
		{"error with stray field", "GET", taskPath, 404, nil, []byte(`{"detail": "no task", "code": 404}`)},
		{"error without detail", "GET", taskPath, 404, nil, []byte(`{}`)},
		{"error with empty detail", "GET", taskPath, 404, nil, []byte(`{"detail": ""}`)},
		{"error as text", "GET", taskPath, 404, http.Header{"Content-Type": {"text/plain"}}, []byte("404 page not found\n")},
		{"no content type", "GET", taskPath, 200, http.Header{}, mustJSON(t, task)},
		{"not JSON", "GET", taskPath, 200, nil, []byte("{")},
		{"page without previous", "GET", "/api/v1/tasks", 200, nil, []byte(`{"count": 0, "next": null, "results": []}`)},
		{"page with null results", "GET", "/api/v1/tasks", 200, nil, []byte(`{"count": 0, "next": null, "previous": null, "results": null}`)},
		{"page of workers as tasks", "GET", "/api/v1/tasks", 200, nil, mustJSON(t, apiv1.Page[apiv1.Worker]{Results: []apiv1.Worker{sampleWorker()}})},
		{"worker with stray field", "GET", "/api/v1/workers/w", 200, nil, edit(t, sampleWorker(), set("address", "x"))},
		{"worker pid as string", "GET", "/api/v1/workers/w", 200, nil, edit(t, sampleWorker(), set("pid", "4242"))},
		{"status without tasks", "GET", "/api/v1/status", 200, nil, edit(t, sampleStatus(), del("tasks"))},
		{"status with stray count", "GET", "/api/v1/status", 200, nil, edit(t, sampleStatus(), func(m map[string]any) {
			m["tasks"].(map[string]any)["completed"] = 1
		})},
		{"status 503", "GET", "/api/v1/status", 503, nil, mustJSON(t, apiv1.Error{Detail: "down"})},
		{"events as JSON", "GET", "/api/v1/events", 200, nil, mustJSON(t, sampleEvent())},
		{"healthz as JSON", "GET", "/healthz", 200, nil, []byte(`"ok"`)},
		{"resource without capacity", "GET", "/api/v1/resources/r", 200, nil, edit(t, sampleResource(), del("capacity"))},
		{"resource capacity 0", "GET", "/api/v1/resources/r", 200, nil, edit(t, sampleResource(), set("capacity", 0))},
		{"resource with stray field", "GET", "/api/v1/resources/r", 200, nil, edit(t, sampleResource(), set("queue", 1))},
		{"resource href with a slash", "GET", "/api/v1/resources/r", 200, nil, edit(t, sampleResource(), set("href", "/api/v1/resources/remote/github"))},
		{"resource holders null", "GET", "/api/v1/resources/r", 200, nil, edit(t, sampleResource(), set("holders", nil))},
		{"resource not found", "GET", "/api/v1/resources/r", 404, nil, mustJSON(t, apiv1.Error{Detail: "no resource"})},
	} {
		err := a.validate(v)
		if err == nil {
			t.Errorf("%s: accepted", a.name)
			continue
		}
		if errors.Is(err, ErrUnknownOperation) {
			t.Errorf("%s: %v", a.name, err)
		}
		t.Logf("%s: %v", a.name, err)
	}

	for _, a := range []answer{
		{"unknown path", "GET", "/api/v1/nope", 200, nil, mustJSON(t, apiv1.Error{Detail: "no such endpoint"})},
		{"unknown method", "PUT", taskPath, 204, nil, nil},
		{"unknown path, 404 as text", "GET", "/api/v1/nope", 404, http.Header{"Content-Type": {"text/plain"}}, []byte("404 page not found\n")},
		{"ui", "GET", "/ui/", 200, http.Header{"Content-Type": {"text/html"}}, []byte("<html>")},
	} {
		if err := a.validate(v); !errors.Is(err, ErrUnknownOperation) {
			t.Errorf("%s: %v, want ErrUnknownOperation", a.name, err)
		}
	}

	for _, a := range []answer{
		{"unknown path, bad Error", "GET", "/api/v1/nope", 404, nil, []byte(`{"error": "no such endpoint"}`)},
		{"unknown method, bad Error", "DELETE", taskPath, 404, nil, []byte(`{"detail": ""}`)},
	} {
		if err := a.validate(v); err == nil || errors.Is(err, ErrUnknownOperation) {
			t.Errorf("%s: %v, want a schema error", a.name, err)
		}
	}

	for name, ev := range map[string][]byte{
		"stray field":   edit(t, sampleEvent(), set("worker", "w")),
		"missing group": edit(t, sampleEvent(), del("task_group")),
		"bad state":     edit(t, sampleEvent(), set("state", "done")),
	} {
		if err := v.ValidateSchema("TaskEvent", ev); err == nil {
			t.Errorf("event with %s: accepted", name)
		}
	}
	if err := v.ValidateSchema("Nope", []byte(`{}`)); err == nil {
		t.Error("ValidateSchema of an unknown schema: accepted")
	}
}

// TestConcurrentUse runs validations in parallel, for the race detector.
func TestConcurrentUse(t *testing.T) {
	v := newValidator(t)
	body := mustJSON(t, fullTask())
	for i := range 8 {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			for range 20 {
				req := httptest.NewRequest("GET", base+"/api/v1/tasks/"+taskID.String(), nil)
				if err := v.ValidateResponse(req, 200, jsonHeader(), body); err != nil {
					t.Error(i, err)
					return
				}
			}
		})
	}
}
