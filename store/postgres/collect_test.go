package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

func oneOff(name string, exclusive ...string) store.NewTask {
	return store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: name, Args: json.RawMessage(`{}`), ExclusiveResources: exclusive}
}

// collectAll calls CollectResources until it deletes less than a batch.
func collectAll(t *testing.T, st store.Store) int {
	t.Helper()
	total := 0
	for {
		n, err := st.CollectResources(context.Background(), 5000)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n < 5000 {
			return total
		}
	}
}

func resourceRows(t *testing.T, st store.Store) int {
	t.Helper()
	var n int
	if err := st.(*postgres.Store).Pool().QueryRow(context.Background(), `SELECT count(*) FROM stint_resources`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCollectOneOffResources runs 100,000 tasks on as many distinct
// resources: once they have ended and the collector has run, no row of
// stint_resources is left.
func TestCollectOneOffResources(t *testing.T) {
	ctx := context.Background()
	st := openFresh(t)
	defer st.Close()
	const tasks, batch = 100_000, 5000
	start := time.Now()
	for i := 0; i < tasks; i += batch {
		var b []store.NewTask
		for j := range batch {
			b = append(b, oneOff("test.oneoff", fmt.Sprintf("repository:%06d", i+j)))
		}
		if _, err := st.Dispatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		for {
			got, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.oneoff"}, Limit: batch})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				break
			}
			outcomes := make([]store.Outcome, len(got))
			for k, c := range got {
				outcomes[k] = store.Outcome{ID: c.ID, Attempt: c.Attempt, State: store.StateCompleted}
			}
			if _, err := st.Finish(ctx, outcomes); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := resourceRows(t, st); n != tasks {
		t.Fatalf("%d rows of resources before collecting, want %d", n, tasks)
	}
	collected := collectAll(t, st)
	if n := resourceRows(t, st); n != 0 || collected != tasks {
		t.Fatalf("%d rows left after collecting %d", n, collected)
	}
	t.Logf("%d tasks on one-off resources, run and collected in %v", tasks, time.Since(start).Round(time.Millisecond))
}

// TestCollectRacesDispatch collects resources while tasks on a few of them
// are dispatched, claimed and finished, so that the rows go idle and are
// made again all the time: no queue entry is lost (every task runs, the
// sweep finds nothing to repair).
func TestCollectRacesDispatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := openFresh(t)
	defer st.Close()
	const workers, rounds = 4, 150
	stop := make(chan struct{})
	var collector sync.WaitGroup
	collector.Add(1)
	collected := 0
	go func() {
		defer collector.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := st.CollectResources(ctx, 100)
			if err != nil {
				t.Error(err)
				return
			}
			collected += n
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("test.race%d", w)
			for i := range rounds {
				nt := oneOff(name, fmt.Sprintf("hot-%d", i%3), fmt.Sprintf("own-%d-%d", w, i%5))
				if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
					t.Error(err)
					return
				}
				for {
					got, err := st.Claim(ctx, store.ClaimParams{Worker: name, Names: []string{name}, Limit: 1})
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 1 {
						if _, err := st.Finish(ctx, []store.Outcome{{ID: got[0].ID, Attempt: got[0].Attempt, State: store.StateCompleted}}); err != nil {
							t.Error(err)
							return
						}
						break
					}
					if ctx.Err() != nil {
						t.Errorf("task %d of %s never became runnable", i, name)
						return
					}
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	collector.Wait()
	if res, err := st.Sweep(ctx); err != nil || res.Total() != 0 {
		t.Fatalf("sweep after the race: %+v %v", res, err)
	}
	if collected == 0 {
		t.Fatal("the collector collected nothing during the race")
	}
	collectAll(t, st)
	if n := resourceRows(t, st); n != 0 {
		t.Fatalf("%d rows left", n)
	}
	t.Logf("collected %d rows during the race", collected)
}
