package storetest

import (
	"fmt"
	"testing"

	"github.com/stint-dev/stint/internal/versions"
	"github.com/stint-dev/stint/store"
)

// testClaimVersions checks that Claim applies the version rule of
// internal/versions: every shared case through a real claim, then versions
// at the edges of the syntax, where the engine's implementation (SQL on
// PostgreSQL) must agree with versions.Satisfies.
func testClaimVersions(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	check := func(t *testing.T, label string, required, provided map[string]string, want bool) {
		t.Helper()
		// A name of its own per case, so that one claim sees one task.
		name := "test.versions." + label
		nt := newTask(name, nil, nil)
		nt.Versions = required
		if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
			t.Fatal(err)
		}
		got, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{name}, Limit: 10, Versions: provided})
		if err != nil {
			t.Fatal(err)
		}
		if claimed := len(got) == 1; claimed != want {
			t.Errorf("%s: task requiring %v, worker providing %v: claimed %v, want %v", label, required, provided, claimed, want)
		}
		if len(got) == 1 {
			if got[0].ID != nt.ID || got[0].State != store.StateRunning {
				t.Fatalf("%s: claimed %+v", label, got[0])
			}
			if _, err := st.Finish(ctx, []store.Outcome{{ID: nt.ID, Attempt: got[0].Attempt, State: store.StateCompleted}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, c := range versions.SatisfiesCases {
		check(t, fmt.Sprintf("case%d", i), c.Required, c.Provided, c.Want)
	}
	// The syntax, on both sides of the requirement. versions.Satisfies is
	// the oracle; the tests of package versions pin what it says.
	edges := []string{"0", "1", "007", "7.0.0.0", "1.2.3.4.5", "1.", ".1", "1..2", "", " 1", "1 ", "+1", "-1",
		"v1", "1.2-beta", "999999999", "1000000000", "0000000001", "00000000000999999999.1", "1e3", "٣", "1\n"}
	n := 0
	for _, req := range edges {
		for _, have := range []string{"1", "7", "999999999", "1000000000", "007.0.1", "1.2.3.4.5", "x"} {
			required, provided := map[string]string{"p": req}, map[string]string{"p": have}
			check(t, fmt.Sprintf("edge%d", n), required, provided, versions.Satisfies(required, provided))
			n++
		}
	}
}

// testVersionsDoNotHoldUpTheQueue: a task a worker does not satisfy is
// passed over by its claims, and claimed by a worker that satisfies it.
func testVersionsDoNotHoldUpTheQueue(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	needs := newTask("test.v", nil, nil)
	needs.Versions = map[string]string{"myplugin": "2.0"}
	plain := newTask("test.v", nil, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{needs, plain}); err != nil {
		t.Fatal(err)
	}
	claim := func(worker, version string) []*store.Task {
		t.Helper()
		got, err := st.Claim(ctx, store.ClaimParams{Worker: worker, Names: []string{"test.v"}, Limit: 1,
			Versions: map[string]string{"myplugin": version, "other": "1"}})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// Limit 1: the older task is first in claim order, and must not take
	// the one slot of a worker that cannot run it.
	got := claim("old", "1.9")
	if len(got) != 1 || got[0].ID != plain.ID || got[0].Worker != "old" {
		t.Fatalf("worker with myplugin 1.9 claimed %v, want only the task without requirement", idsOf(got))
	}
	if again := claim("old", "1.9"); len(again) != 0 {
		t.Fatalf("worker with myplugin 1.9 claimed %v", idsOf(again))
	}
	got = claim("new", "2.1")
	if len(got) != 1 || got[0].ID != needs.ID || got[0].Worker != "new" || got[0].Versions["myplugin"] != "2.0" {
		t.Fatalf("worker with myplugin 2.1 claimed %v, want the task requiring 2.0", idsOf(got))
	}
}

func idsOf(tasks []*store.Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.ID.String()
	}
	return out
}
