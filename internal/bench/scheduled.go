package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// scheduledAhead is how many tasks the scheduled scenario schedules an
// hour ahead before its throughput run.
const scheduledAhead = 100_000

// preloadScheduled dispatches n tasks scheduled an hour ahead: they sit in
// the due index, and dispatches and claims of other tasks must not pay for
// them.
func preloadScheduled(ctx context.Context, st *postgres.Store, n int) error {
	at := time.Now().Add(time.Hour).UTC()
	const chunk = 10_000
	var batch []store.NewTask
	for left := n; left > 0; left -= chunk {
		batch = batch[:0]
		for range min(chunk, left) {
			batch = append(batch, store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "stint.noop",
				Args: json.RawMessage(`{}`), ScheduledAt: &at})
		}
		if _, err := st.Dispatch(ctx, batch); err != nil {
			return err
		}
	}
	return settle(ctx, st, "scheduled", "")
}

// scheduledRounds is how many runs of each kind the scheduled scenario
// makes, alternately: one pair of runs on this machine differs by up to a
// fifth from the next pair, more than the effect it looks for.
const scheduledRounds = 3

// runScheduled is the scheduled scenario: throughput-noop with
// scheduledAhead tasks scheduled an hour ahead and with none, both settled
// (vacuumed, analyzed, checkpointed) and run alternately scheduledRounds
// times, compared by their medians; and then how late due tasks start on
// an idle worker (cfg.Samples tasks, each scheduled 100 to 300 ms ahead,
// one at a time).
func runScheduled(ctx context.Context, cfg Config) (string, error) {
	plain := cfg.load("stint.noop")
	plain.settled = true
	ahead := plain
	ahead.scheduled = scheduledAhead
	var plainRates, aheadRates []float64
	for range scheduledRounds {
		for _, l := range []throughputLoad{plain, ahead} {
			t, err := runThroughput(ctx, cfg, scratchPostgres, l)
			if err != nil {
				return "", err
			}
			if l.scheduled > 0 {
				aheadRates = append(aheadRates, t.rate)
			} else {
				plainRates = append(plainRates, t.rate)
			}
		}
	}
	p50, p99, err := startLatency(ctx, cfg, "bench.due", func(i int) time.Duration {
		return 100*time.Millisecond + time.Duration(i%3)*100*time.Millisecond
	})
	if err != nil {
		return "", err
	}
	a, b := median(aheadRates), median(plainRates)
	return fmt.Sprintf("scheduled: ratio %.2f (throughput-noop with %d tasks scheduled an hour ahead: %.0f tasks/s; with none: %.0f tasks/s; medians of %d alternate runs: %s and %s)\n"+
		"scheduled: due to running p50 %.1f ms p99 %.1f ms (a task scheduled 100-300 ms ahead, on an idle worker, %d samples)",
		a/b, scheduledAhead, a, b, scheduledRounds, rates(aheadRates), rates(plainRates), ms(p50), ms(p99), cfg.Samples), nil
}

// median is the median of xs (the mean of the middle two of an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// rates formats tasks-per-second figures for a report: "9616/9844/9700".
func rates(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strings.Join(parts, "/")
}
