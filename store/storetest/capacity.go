package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// setCapacity sets a resource's capacity (0: none) or fails the test.
func setCapacity(t *testing.T, st store.Store, name string, n int) {
	t.Helper()
	var capacity *int
	if n > 0 {
		capacity = &n
	}
	if err := st.SetCapacity(ctxFor(t), name, capacity); err != nil {
		t.Fatalf("set capacity of %s to %d: %v", name, n, err)
	}
}

// dispatchAll dispatches tasks one dispatch each, in order, or fails the
// test.
func dispatchAll(t *testing.T, st store.Store, tasks ...store.NewTask) {
	t.Helper()
	for _, nt := range tasks {
		if _, err := st.Dispatch(ctxFor(t), []store.NewTask{nt}); err != nil {
			t.Fatal(err)
		}
	}
}

// claimedIDs claims everything runnable of name and returns the ids in
// claim order.
func claimedIDs(t *testing.T, st store.Store, name string) ([]uuid.UUID, []*store.Task) {
	t.Helper()
	got := claimAll(t, st, []string{name}, 100)
	return storedIDs(got), got
}

// testCapacityBoundsHolders: capacity 2, five shared tasks: at most two run
// at once, and they start in dispatch order as holders end.
func testCapacityBoundsHolders(t *testing.T, open Opener) {
	st, _ := openStore(t, open)
	setCapacity(t, st, "cap-r", 2)
	var tasks []store.NewTask
	for range 5 {
		tasks = append(tasks, newTask("test.cap", nil, sh("cap-r")))
	}
	dispatchAll(t, st, tasks...)
	var started []uuid.UUID
	running := map[uuid.UUID]*store.Task{}
	for round := 0; len(started) < 5; round++ {
		if round > 10 {
			t.Fatalf("stuck: started %v", started)
		}
		_, got := claimedIDs(t, st, "test.cap")
		for _, c := range got {
			running[c.ID] = c
			started = append(started, c.ID)
		}
		if len(running) > 2 {
			t.Fatalf("round %d: %d tasks run at once on a resource of capacity 2", round, len(running))
		}
		// End the oldest running one.
		for _, id := range started {
			if c, ok := running[id]; ok {
				end(t, st, c, store.StateCompleted)
				delete(running, id)
				break
			}
		}
	}
	if want := newIDs(tasks); !slices.Equal(started, want) {
		t.Fatalf("start order %v, want dispatch order %v", started, want)
	}
	sweepClean(t, st)
}

// testCapacityExclusiveNotOvertaken: capacity 3, two shared holders, then an
// exclusive task, then a shared one: the exclusive waits for the holders,
// and the later shared one waits for it although the resource has room.
func testCapacityExclusiveNotOvertaken(t *testing.T, open Opener) {
	st, _ := openStore(t, open)
	setCapacity(t, st, "cap-x", 3)
	a, b := newTask("test.capx", nil, sh("cap-x")), newTask("test.capx", nil, sh("cap-x"))
	x, c := newTask("test.capx", ex("cap-x"), nil), newTask("test.capx", nil, sh("cap-x"))
	dispatchAll(t, st, a, b, x, c)
	ids, got := claimedIDs(t, st, "test.capx")
	if !slices.Equal(ids, []uuid.UUID{a.ID, b.ID}) {
		t.Fatalf("claimed %v, want the two shared holders %v", ids, []uuid.UUID{a.ID, b.ID})
	}
	end(t, st, got[0], store.StateCompleted)
	if ids, _ := claimedIDs(t, st, "test.capx"); len(ids) != 0 {
		t.Fatalf("claimed %v with a holder left before the exclusive task", ids)
	}
	end(t, st, got[1], store.StateCompleted)
	ids, got = claimedIDs(t, st, "test.capx")
	if !slices.Equal(ids, []uuid.UUID{x.ID}) {
		t.Fatalf("claimed %v, want the exclusive task alone", ids)
	}
	end(t, st, got[0], store.StateCompleted)
	if ids, _ := claimedIDs(t, st, "test.capx"); !slices.Equal(ids, []uuid.UUID{c.ID}) {
		t.Fatalf("claimed %v, want the last shared task", ids)
	}
	sweepClean(t, st)
}

// testCapacityRaised: capacity 1, one holder and three waiting: raising the
// capacity to 3 lets two more start at once, in dispatch order.
func testCapacityRaised(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	setCapacity(t, st, "cap-up", 1)
	var tasks []store.NewTask
	for range 4 {
		tasks = append(tasks, newTask("test.capup", nil, sh("cap-up")))
	}
	if _, err := st.Dispatch(ctx, tasks); err != nil { // one batch: the rule within a batch
		t.Fatal(err)
	}
	if ids, _ := claimedIDs(t, st, "test.capup"); !slices.Equal(ids, []uuid.UUID{tasks[0].ID}) {
		t.Fatalf("claimed %v at capacity 1", ids)
	}
	wake, err := st.Wakeups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	drain(wake)
	setCapacity(t, st, "cap-up", 3)
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Error("raising the capacity woke no worker")
	}
	if ids, _ := claimedIDs(t, st, "test.capup"); !slices.Equal(ids, []uuid.UUID{tasks[1].ID, tasks[2].ID}) {
		t.Fatalf("claimed %v after raising the capacity to 3, want %v", ids, newIDs(tasks[1:3]))
	}
	checkBlockedFull(t, st, tasks[3].ID, "cap-up", 3, 3, newIDs(tasks[:3]))
	setCapacity(t, st, "cap-up", 0) // no bound: the last one starts too
	if ids, _ := claimedIDs(t, st, "test.capup"); !slices.Equal(ids, []uuid.UUID{tasks[3].ID}) {
		t.Fatalf("claimed %v after removing the capacity", ids)
	}
	sweepClean(t, st)
}

// drain empties a wake-up channel without blocking.
func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond):
			return
		}
	}
}

// checkBlockedFull checks that a waiting task is blocked by a full
// resource: holders of capacity, the blockers being the earlier tasks.
func checkBlockedFull(t *testing.T, st store.Store, id uuid.UUID, res string, holders, capacity int, earlier []uuid.UUID) {
	t.Helper()
	got, err := st.BlockedBy(ctxFor(t), id)
	if err != nil {
		t.Fatal(err)
	}
	var want []store.Blocker
	for _, e := range earlier {
		want = append(want, store.Blocker{Task: e, Resource: res, Capacity: capacity, Holders: holders})
	}
	if !slices.Equal(got, want) {
		t.Fatalf("blocked by %+v, want %+v", got, want)
	}
}

// testCapacityLowered: capacity 3 with three holders, lowered to 1: no new
// task starts until two of them have ended, and the next starts only when
// the third has too.
func testCapacityLowered(t *testing.T, open Opener) {
	st, _ := openStore(t, open)
	setCapacity(t, st, "cap-down", 3)
	var tasks []store.NewTask
	for range 5 {
		tasks = append(tasks, newTask("test.capdown", nil, sh("cap-down")))
	}
	dispatchAll(t, st, tasks...)
	ids, got := claimedIDs(t, st, "test.capdown")
	if !slices.Equal(ids, newIDs(tasks[:3])) {
		t.Fatalf("claimed %v at capacity 3", ids)
	}
	setCapacity(t, st, "cap-down", 1)
	for i, holder := range got {
		if ids, _ := claimedIDs(t, st, "test.capdown"); len(ids) != 0 {
			t.Fatalf("claimed %v with %d holders at capacity 1", ids, 3-i)
		}
		end(t, st, holder, store.StateCompleted)
	}
	ids, got = claimedIDs(t, st, "test.capdown")
	if !slices.Equal(ids, []uuid.UUID{tasks[3].ID}) {
		t.Fatalf("claimed %v once the holders ended, want the fourth task alone", ids)
	}
	checkBlockedFull(t, st, tasks[4].ID, "cap-down", 1, 1, []uuid.UUID{tasks[3].ID})
	end(t, st, got[0], store.StateFailed)
	if ids, _ := claimedIDs(t, st, "test.capdown"); !slices.Equal(ids, []uuid.UUID{tasks[4].ID}) {
		t.Fatalf("claimed %v, want the fifth task", ids)
	}
	sweepClean(t, st)
}

// testCapacityUnitOfLostWorker: a worker that stops heartbeating holds the
// only unit of a resource; its unit is freed when its task is dropped and
// not before, and the next task then starts. A canceling holder holds its
// unit until it ends.
func testCapacityUnitOfLostWorker(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	setCapacity(t, st, "cap-lost", 1)
	register(t, st, "1@lost")
	register(t, st, "2@alive")
	var tasks []store.NewTask
	for range 3 {
		tasks = append(tasks, newTask("test.caplost", nil, sh("cap-lost")))
	}
	dispatchAll(t, st, tasks...)
	held := claimOne(t, st, "1@lost", "test.caplost")
	claimNone := func(when string) {
		t.Helper()
		got, err := st.Claim(ctx, store.ClaimParams{Worker: "2@alive", Names: []string{"test.caplost"}, Limit: 10})
		if err != nil || len(got) != 0 {
			t.Fatalf("%s: claimed %d tasks (%v)", when, len(got), err)
		}
	}
	claimNone("while the lost worker's task holds the only unit")
	stop := heartbeating(t, st, "2@alive")
	defer stop()
	time.Sleep(lostSleep)
	claimNone("with the worker silent but not yet declared lost")
	lost, err := st.DropLostWorkers(ctx, lostAfter)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(lost.Tasks, []uuid.UUID{held.ID}) || taskState(t, st, held.ID).State != store.StateDropped {
		t.Fatalf("dropped %v, want %s", lost.Tasks, held.ID)
	}
	second := claimOne(t, st, "2@alive", "test.caplost")
	if second.ID != tasks[1].ID {
		t.Fatalf("claimed %s, want the next task %s", second.ID, tasks[1].ID)
	}
	if _, err := st.Cancel(ctx, second.ID); err != nil {
		t.Fatal(err)
	}
	claimNone("while the canceling holder holds the only unit")
	end(t, st, second, store.StateCompleted) // ends canceled
	third := claimOne(t, st, "2@alive", "test.caplost")
	if third.ID != tasks[2].ID {
		t.Fatalf("claimed %s, want the third task %s", third.ID, tasks[2].ID)
	}
	end(t, st, third, store.StateCompleted)
	if r, err := st.Resource(ctx, "cap-lost"); err != nil || r.Holders != 0 || r.Waiting != 0 {
		t.Fatalf("resource after the runs: %+v %v", r, err)
	}
	sweepClean(t, st)
}

// testResourcesView lists resources with their counts, holders and queues,
// filters and orders them, and shows one with its waiting tasks.
func testResourcesView(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	setCapacity(t, st, "view-counted", 2)
	setCapacity(t, st, "view-idle", 5)
	var counted []store.NewTask
	for i := range 5 {
		nt := newTask("test.view", nil, sh("view-counted"))
		nt.Owner = fmt.Sprintf("owner%d", i%2)
		counted = append(counted, nt)
	}
	x1, x2 := newTask("test.view", ex("view-x"), nil), newTask("test.view", ex("view-x"), sh("view-other"))
	dispatchAll(t, st, counted...)
	before := time.Now()
	dispatchAll(t, st, x1, x2)
	claimAll(t, st, []string{"test.view"}, 100)

	page, err := st.Resources(ctx, store.ResourceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		name              string
		capacity          int
		holders, waiting  int
		holderTasks       int
		waitingSinceKnown bool
	}
	summarize := func(list []*store.Resource) []row {
		var out []row
		for _, r := range list {
			c := 0
			if r.Capacity != nil {
				c = *r.Capacity
			}
			out = append(out, row{r.Name, c, r.Holders, r.Waiting, len(r.HolderTasks), r.OldestWaitingSince != nil})
		}
		return out
	}
	want := []row{
		{"view-counted", 2, 2, 3, 2, true},
		{"view-idle", 5, 0, 0, 0, false},
		{"view-other", 0, 1, 0, 1, false}, // granted to x2, which waits on view-x
		{"view-x", 0, 1, 1, 1, true},
	}
	if got := summarize(page.Resources); !slices.Equal(got, want) {
		t.Fatalf("resources\n got %+v\nwant %+v", got, want)
	}
	if page.Count != 4 || page.Waiting != 4 {
		t.Fatalf("count %d waiting %d, want 4 and 4", page.Count, page.Waiting)
	}
	if h := page.Resources[0].HolderTasks; h[0].ID != counted[0].ID || h[1].ID != counted[1].ID || h[0].Owner != "owner0" || h[0].Exclusive {
		t.Fatalf("holders of view-counted: %+v", h)
	}
	if got := page.Resources[3].OldestWaitingSince; got.Before(before.Add(-time.Second)) || got.After(time.Now().Add(time.Second)) {
		t.Fatalf("view-x waits since %v, dispatched at about %v", got, before)
	}

	for _, c := range []struct {
		f    store.ResourceFilter
		want []string
	}{
		{store.ResourceFilter{Busy: true}, []string{"view-counted", "view-other", "view-x"}},
		{store.ResourceFilter{Name: "view-x"}, []string{"view-x"}},
		{store.ResourceFilter{NameContains: "o"}, []string{"view-counted", "view-other"}},
		{store.ResourceFilter{Ordering: store.OrderResourceWaitingDesc}, []string{"view-counted", "view-x", "view-idle", "view-other"}},
		{store.ResourceFilter{Ordering: store.OrderResourceHoldersDesc, Limit: 2}, []string{"view-counted", "view-other"}},
		{store.ResourceFilter{Ordering: store.OrderResourceNameDesc, Limit: 2, Offset: 1}, []string{"view-other", "view-idle"}},
		{store.ResourceFilter{Offset: 10}, nil},
	} {
		page, err := st.Resources(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range page.Resources {
			names = append(names, r.Name)
		}
		if !slices.Equal(names, c.want) {
			t.Errorf("%+v: %v, want %v", c.f, names, c.want)
		}
	}

	one, err := st.Resource(ctx, "view-counted")
	if err != nil {
		t.Fatal(err)
	}
	if one.Holders != 2 || one.Waiting != 3 || !slices.Equal(resourceTaskIDs(one.WaitingTasks), newIDs(counted[2:])) {
		t.Fatalf("view-counted: %d holders, %d waiting %v", one.Holders, one.Waiting, resourceTaskIDs(one.WaitingTasks))
	}
	idle, err := st.Resource(ctx, "never-used")
	if err != nil || idle.Holders != 0 || idle.Waiting != 0 || idle.Capacity != nil || len(idle.HolderTasks) != 0 || idle.WaitingTasks == nil {
		t.Fatalf("an unknown resource: %+v %v", idle, err)
	}
}

func resourceTaskIDs(list []store.ResourceTask) []uuid.UUID {
	out := make([]uuid.UUID, len(list))
	for i, r := range list {
		out[i] = r.ID
	}
	return out
}

// testCollectResources: a thousand one-off resources leave nothing behind
// once their tasks ended and CollectResources ran; a resource with a
// capacity, or in use, stays.
func testCollectResources(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	setCapacity(t, st, "kept", 1)
	var batch []store.NewTask
	for i := range 1000 {
		batch = append(batch, newTask("test.oneoff", ex(fmt.Sprintf("oneoff-%04d", i)), sh("kept")))
	}
	if _, err := st.Dispatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	busy := newTask("test.busy", ex("in-use"), nil)
	dispatchAll(t, st, busy)
	for {
		got := claimAll(t, st, []string{"test.oneoff"}, 1000)
		if len(got) == 0 {
			break
		}
		if _, err := st.Finish(ctx, completed(got)); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for {
		n, err := st.CollectResources(ctx, 300)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n < 300 {
			break
		}
	}
	page, err := st.Resources(ctx, store.ResourceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range page.Resources {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"in-use", "kept"}) {
		t.Fatalf("resources left: %v (collected %d)", names, total)
	}
	// A collected resource is made again by the next task on it.
	again := newTask("test.oneoff", ex("oneoff-0001"), nil)
	dispatchAll(t, st, again)
	if got := claimOne(t, st, "w", "test.oneoff"); got.ID != again.ID {
		t.Fatalf("claimed %s, want %s", got.ID, again.ID)
	}
	sweepClean(t, st)
}
