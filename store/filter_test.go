package store_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// TestFilterTermsCoverEveryField: each condition field of TaskFilter, set
// alone, makes exactly one term, and together they make every
// FilterField once: a field added to TaskFilter and not to Terms fails
// here (and one added to Terms that an engine does not translate fails
// the conformance suite's list tests on that engine).
func TestFilterTermsCoverEveryField(t *testing.T) {
	notConditions := map[string]bool{"Ordering": true, "Limit": true, "Offset": true}
	now := time.Now()
	id := uuid.Must(uuid.NewV7())
	seen := map[store.FilterField]string{}
	typ := reflect.TypeOf(store.TaskFilter{})
	for i := range typ.NumField() {
		field := typ.Field(i)
		if notConditions[field.Name] {
			continue
		}
		var f store.TaskFilter
		v := reflect.ValueOf(&f).Elem().Field(i)
		switch v.Interface().(type) {
		case []uuid.UUID:
			v.Set(reflect.ValueOf([]uuid.UUID{id}))
		case []store.State:
			v.Set(reflect.ValueOf([]store.State{store.StateWaiting}))
		case string:
			v.SetString("x")
		case *uuid.UUID:
			v.Set(reflect.ValueOf(&id))
		case *time.Time:
			v.Set(reflect.ValueOf(&now))
		default:
			t.Fatalf("TaskFilter.%s has a type (%s) this test does not know: teach it, and Terms", field.Name, field.Type)
		}
		terms := f.Terms()
		if len(terms) != 1 {
			t.Fatalf("TaskFilter.%s alone makes %d terms; want 1", field.Name, len(terms))
		}
		if other, dup := seen[terms[0].Field]; dup {
			t.Fatalf("TaskFilter.%s and .%s make the same term %d", other, field.Name, terms[0].Field)
		}
		seen[terms[0].Field] = field.Name
		if f.OnlyStates() != (terms[0].Field == store.FilterStates) {
			t.Errorf("TaskFilter.%s: OnlyStates %v", field.Name, f.OnlyStates())
		}
	}
	for _, ff := range store.FilterFields() {
		if _, ok := seen[ff]; !ok {
			t.Errorf("no TaskFilter field makes term %d", ff)
		}
	}
	if !(store.TaskFilter{Limit: 5, Ordering: store.OrderCreatedDesc}).OnlyStates() {
		t.Error("a filter without conditions is not OnlyStates")
	}
}
