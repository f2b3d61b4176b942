// Package storetest is the conformance suite every store.Store must pass.
// An engine's tests call Run with a function that opens a fresh, migrated
// store for each test.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// Opener returns a fresh, migrated, empty store for one test. The store is
// closed by the suite.
type Opener func(t *testing.T) store.Store

// Run runs the whole suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	t.Run("Scheduling", func(t *testing.T) { testScheduling(t, open) })
	t.Run("DispatchRecordsFields", func(t *testing.T) { testDispatchFields(t, open) })
	t.Run("ConcurrentDispatch", func(t *testing.T) { testConcurrentDispatch(t, open) })
	t.Run("ClaimOrderAndLimit", func(t *testing.T) { testClaimOrder(t, open) })
	t.Run("ClaimOnlyKnownNames", func(t *testing.T) { testClaimNames(t, open) })
	t.Run("FinishIsFenced", func(t *testing.T) { testFencing(t, open) })
	t.Run("FinishRecordsOutcome", func(t *testing.T) { testFinishOutcome(t, open) })
	t.Run("BlockedBy", func(t *testing.T) { testBlockedBy(t, open) })
	t.Run("CapacityBoundsHolders", func(t *testing.T) { testCapacityBoundsHolders(t, open) })
	t.Run("CapacityExclusiveNotOvertaken", func(t *testing.T) { testCapacityExclusiveNotOvertaken(t, open) })
	t.Run("CapacityRaised", func(t *testing.T) { testCapacityRaised(t, open) })
	t.Run("CapacityLowered", func(t *testing.T) { testCapacityLowered(t, open) })
	t.Run("CapacityUnitOfLostWorker", func(t *testing.T) { testCapacityUnitOfLostWorker(t, open) })
	t.Run("ResourcesView", func(t *testing.T) { testResourcesView(t, open) })
	t.Run("CollectResources", func(t *testing.T) { testCollectResources(t, open) })
	t.Run("Workers", func(t *testing.T) { testWorkers(t, open) })
	t.Run("HeartbeatFindsUnknownHeldTasks", func(t *testing.T) { testHeartbeatUnknown(t, open) })
	t.Run("SweepFindsNothingAfterNormalWork", func(t *testing.T) { testSweepClean(t, open) })
	t.Run("Wakeups", func(t *testing.T) { testWakeups(t, open) })
	t.Run("Cancels", func(t *testing.T) { testCancels(t, open) })
	t.Run("OrphanRuns", func(t *testing.T) { testOrphanRuns(t, open) })
	t.Run("ManyWaitingDoNotSlowTheHeads", func(t *testing.T) { testDeepQueue(t, open) })
	t.Run("RandomScheduleAgreesWithTheRule", func(t *testing.T) { testAgreesWithTheRule(t, open) })
	t.Run("ConcurrentReleasesUnblockOnce", func(t *testing.T) { testConcurrentReleases(t, open) })
	t.Run("ListTasks", func(t *testing.T) { testListTasks(t, open) })
	t.Run("ListTasksTiesInDispatchOrder", func(t *testing.T) { testListTies(t, open) })
	t.Run("ListTasksByIDs", func(t *testing.T) { testListByIDs(t, open) })
	t.Run("ListTasksTotals", func(t *testing.T) { testListTotals(t, open) })
	t.Run("ListTasksEveryFilterField", func(t *testing.T) { testListEveryFilterField(t, open) })
	t.Run("CountsFollowTheTasks", func(t *testing.T) { testCountsFollowTheTasks(t, open) })
	t.Run("CountsUnderConcurrentWrites", func(t *testing.T) { testCountsUnderConcurrentWrites(t, open) })
	t.Run("WorkerCurrentTasks", func(t *testing.T) { testWorkerCurrentTasks(t, open) })
	t.Run("Changes", func(t *testing.T) { testChanges(t, open) })
	t.Run("ChangesWithASlowReader", func(t *testing.T) { testChangesSlowReader(t, open) })
	t.Run("Users", func(t *testing.T) { testUsers(t, open) })
	t.Run("CreateTaskGroup", func(t *testing.T) { testCreateTaskGroup(t, open) })
	t.Run("TaskGroupOf1000UnderWork", func(t *testing.T) { testTaskGroupConcurrentWork(t, open) })
	t.Run("TaskGroupAllOrNothing", func(t *testing.T) { testTaskGroupAllOrNothing(t, open) })
	t.Run("TaskGroupScheduling", func(t *testing.T) { testTaskGroupScheduling(t, open) })
	t.Run("TaskGroupCounts", func(t *testing.T) { testTaskGroupCounts(t, open) })
	t.Run("TaskGroupDone", func(t *testing.T) { testTaskGroupDone(t, open) })
	t.Run("ListTaskGroups", func(t *testing.T) { testListTaskGroups(t, open) })
	t.Run("SealTaskGroup", func(t *testing.T) { testSealTaskGroup(t, open) })
	t.Run("GroupSealIsAtomicWithDispatch", func(t *testing.T) { testSealIsAtomicWithDispatch(t, open) })
	t.Run("TaskGroupNotFound", func(t *testing.T) { testTaskGroupNotFound(t, open) })
	t.Run("CancelTaskGroup", func(t *testing.T) { testCancelTaskGroup(t, open) })
	t.Run("CancelTaskGroupRacesWorkers", func(t *testing.T) { testCancelTaskGroupRaces(t, open) })
	t.Run("DeleteTask", func(t *testing.T) { testDeleteTask(t, open) })
	t.Run("Purge", func(t *testing.T) { testPurge(t, open) })
	t.Run("ClaimVersions", func(t *testing.T) { testClaimVersions(t, open) })
	t.Run("VersionsDoNotHoldUpTheQueue", func(t *testing.T) { testVersionsDoNotHoldUpTheQueue(t, open) })
	t.Run("DispatchImmediate", func(t *testing.T) { testDispatchImmediate(t, open) })
	t.Run("LostWorkers", func(t *testing.T) { testLostWorkers(t, open) })
	t.Run("ScheduledTaskRunsAfterItsTime", func(t *testing.T) { testScheduledRunsAfterItsTime(t, open) })
	t.Run("ScheduledTasksEnterInDueOrder", func(t *testing.T) { testScheduledInDueOrder(t, open) })
	t.Run("CancelScheduled", func(t *testing.T) { testCancelScheduled(t, open) })
	t.Run("ScheduledPastIsNormal", func(t *testing.T) { testScheduledPastIsNormal(t, open) })
	t.Run("DueSignals", func(t *testing.T) { testDueSignals(t, open) })
	t.Run("RetryCompletesOnThirdAttempt", func(t *testing.T) { testRetryCompletes(t, open) })
	t.Run("RetriesRunOut", func(t *testing.T) { testRetriesRunOut(t, open) })
	t.Run("NoRetryFailsAtOnce", func(t *testing.T) { testNoRetryFailsAtOnce(t, open) })
	t.Run("CanceledNotRetried", func(t *testing.T) { testCanceledNotRetried(t, open) })
	t.Run("RetryDroppedOnLostWorker", func(t *testing.T) { testRetryDroppedOnLostWorker(t, open) })
	t.Run("RetryReleasesResources", func(t *testing.T) { testRetryReleasesResources(t, open) })
	t.Run("UniqueKeyDeduplicates", func(t *testing.T) { testUniqueKeyDeduplicates(t, open) })
	t.Run("ListTasksScheduled", func(t *testing.T) { testListScheduled(t, open) })
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func openStore(t *testing.T, open Opener) (store.Store, context.Context) {
	st := open(t)
	t.Cleanup(st.Close)
	return st, ctxFor(t)
}

// newTask builds a NewTask from a compact spec.
func newTask(name string, exclusive, shared []string) store.NewTask {
	id, err := uuid.NewV7()
	if err != nil {
		panic(err)
	}
	return store.NewTask{ID: id, Name: name, Args: json.RawMessage(`{}`), ExclusiveResources: exclusive, SharedResources: shared}
}

// step is one step of a scheduling scenario.
type step struct {
	dispatch string   // dispatch a task with this label...
	ex, sh   []string // ...holding these resources
	claim    []string // claim everything runnable: exactly these labels
	finish   string   // finish the running task with this label
	cancel   string   // cancel-release a waiting task (release without running)
}

func ex(r ...string) []string { return r }
func sh(r ...string) []string { return r }

// schedulingCases are the fairness rules of DESIGN §1 and §3, each as a
// sequence of dispatches, claims and finishes.
var schedulingCases = []struct {
	name  string
	steps []step
}{
	{"exclusive holders never overlap", []step{
		{dispatch: "A", ex: ex("r")}, {dispatch: "B", ex: ex("r")},
		{claim: []string{"A"}}, {claim: []string{}},
		{finish: "A"}, {claim: []string{"B"}}, {finish: "B"},
	}},
	{"two shared holders overlap", []step{
		{dispatch: "A", sh: sh("r")}, {dispatch: "B", sh: sh("r")},
		{claim: []string{"A", "B"}}, {finish: "A"}, {finish: "B"},
	}},
	{"a writer waits for earlier readers", []step{
		{dispatch: "R1", sh: sh("r")}, {dispatch: "R2", sh: sh("r")}, {dispatch: "W", ex: ex("r")},
		{claim: []string{"R1", "R2"}},
		{finish: "R1"}, {claim: []string{}},
		{finish: "R2"}, {claim: []string{"W"}}, {finish: "W"},
	}},
	{"a later reader waits for an earlier waiting writer", []step{
		{dispatch: "R1", sh: sh("r")}, {claim: []string{"R1"}},
		{dispatch: "W", ex: ex("r")}, {dispatch: "R2", sh: sh("r")},
		{claim: []string{}},
		{finish: "R1"}, {claim: []string{"W"}},
		{finish: "W"}, {claim: []string{"R2"}}, {finish: "R2"},
	}},
	{"a task on D waits behind an earlier task on C+D while C is busy", []step{
		{dispatch: "onC", ex: ex("C")}, {claim: []string{"onC"}},
		{dispatch: "onCD", ex: ex("C", "D")}, {dispatch: "onD", ex: ex("D")},
		{claim: []string{}},
		{finish: "onC"}, {claim: []string{"onCD"}},
		{finish: "onCD"}, {claim: []string{"onD"}}, {finish: "onD"},
	}},
	{"a shared task on D waits behind an earlier exclusive C+D", []step{
		{dispatch: "onC", sh: sh("C")}, {claim: []string{"onC"}},
		{dispatch: "onCD", ex: ex("C", "D")}, {dispatch: "readD", sh: sh("D")},
		{claim: []string{}},
		{finish: "onC"}, {claim: []string{"onCD"}},
		{finish: "onCD"}, {claim: []string{"readD"}}, {finish: "readD"},
	}},
	{"independent resources run concurrently", []step{
		{dispatch: "A", ex: ex("r1")}, {dispatch: "B", ex: ex("r2")}, {dispatch: "C", ex: ex("r3"), sh: sh("r4")},
		{claim: []string{"A", "B", "C"}}, {finish: "B"}, {finish: "A"}, {finish: "C"},
	}},
	{"tasks with no resources never wait", []step{
		{dispatch: "A", ex: ex("r")}, {dispatch: "B", ex: ex("r")}, {dispatch: "free"},
		{claim: []string{"A", "free"}}, {finish: "free"}, {finish: "A"}, {claim: []string{"B"}}, {finish: "B"},
	}},
	{"readers after a writer run together once it finishes", []step{
		{dispatch: "W", ex: ex("r")}, {dispatch: "R1", sh: sh("r")}, {dispatch: "R2", sh: sh("r")}, {dispatch: "W2", ex: ex("r")},
		{claim: []string{"W"}}, {finish: "W"},
		{claim: []string{"R1", "R2"}}, {finish: "R2"}, {claim: []string{}}, {finish: "R1"},
		{claim: []string{"W2"}}, {finish: "W2"},
	}},
	{"a canceled waiting task unblocks the tasks behind it", []step{
		{dispatch: "A", ex: ex("r")}, {claim: []string{"A"}},
		{dispatch: "B", ex: ex("r", "s")}, {dispatch: "C", ex: ex("s")},
		{claim: []string{}},
		{cancel: "B"}, {claim: []string{"C"}}, {finish: "C"}, {finish: "A"},
	}},
	{"a task waits until all its resources are free", []step{
		{dispatch: "A", ex: ex("r1")}, {dispatch: "B", ex: ex("r2")}, {claim: []string{"A", "B"}},
		{dispatch: "AB", ex: ex("r1"), sh: sh("r2")},
		{finish: "A"}, {claim: []string{}}, {finish: "B"}, {claim: []string{"AB"}}, {finish: "AB"},
	}},
	{"resources freed by a batch of finishes unblock in order", []step{
		{dispatch: "A", ex: ex("r")}, {dispatch: "B", sh: sh("r")}, {dispatch: "C", sh: sh("r")}, {dispatch: "D", ex: ex("r")},
		{claim: []string{"A"}}, {finish: "A"}, {claim: []string{"B", "C"}},
		{finish: "B"}, {finish: "C"}, {claim: []string{"D"}}, {finish: "D"},
	}},
}

func testScheduling(t *testing.T, open Opener) {
	for _, tc := range schedulingCases {
		t.Run(tc.name, func(t *testing.T) {
			st, ctx := openStore(t, open)
			ids := map[string]uuid.UUID{}
			labels := map[uuid.UUID]string{}
			running := map[string]*store.Task{}
			for i, s := range tc.steps {
				switch {
				case s.dispatch != "":
					nt := newTask("test.task", s.ex, s.sh)
					if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
						t.Fatalf("step %d: dispatch %s: %v", i, s.dispatch, err)
					}
					ids[s.dispatch], labels[nt.ID] = nt.ID, s.dispatch
				case s.claim != nil:
					got, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.task"}, Limit: 100})
					if err != nil {
						t.Fatalf("step %d: claim: %v", i, err)
					}
					var names []string
					for _, task := range got {
						names = append(names, labels[task.ID])
						running[labels[task.ID]] = task
					}
					sort.Strings(names)
					want := slices.Clone(s.claim)
					sort.Strings(want)
					if !slices.Equal(names, want) {
						t.Fatalf("step %d: claimed %v, want %v", i, names, want)
					}
				case s.finish != "":
					task := running[s.finish]
					if task == nil {
						t.Fatalf("step %d: %s is not running", i, s.finish)
					}
					done, err := st.Finish(ctx, []store.Outcome{{ID: task.ID, Attempt: task.Attempt, State: store.StateCompleted}})
					if err != nil || len(done) != 1 {
						t.Fatalf("step %d: finish %s: %v %v", i, s.finish, done, err)
					}
					delete(running, s.finish)
				case s.cancel != "":
					if err := cancelWaiting(ctx, st, ids[s.cancel]); err != nil {
						t.Fatalf("step %d: cancel %s: %v", i, s.cancel, err)
					}
				}
			}
			// Every scenario ends with everything final and nothing for the
			// sweep to repair.
			res, err := st.Sweep(ctx)
			if err != nil || res.Total() != 0 {
				t.Fatalf("sweep after scenario: %+v %v", res, err)
			}
		})
	}
}

// cancelWaiting cancels a waiting task and checks that it ended canceled.
func cancelWaiting(ctx context.Context, st store.Store, id uuid.UUID) error {
	task, err := st.Cancel(ctx, id)
	if err != nil {
		return err
	}
	if task.State != store.StateCanceled {
		return fmt.Errorf("task %s is %s after cancel, want canceled", id, task.State)
	}
	return nil
}
