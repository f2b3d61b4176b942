package e2e

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/scheduling"
)

// TestCheckResources runs the stress test's checker on hand-built histories,
// so that a checker unable to fail cannot pass the stress test.
func TestCheckResources(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	task := func(seq int64, exclusive bool, start, end int) record {
		r := record{id: uuid.New(), seq: seq, state: "completed", started: at(start), finish: at(end)}
		if exclusive {
			r.res = scheduling.Resources{Exclusive: []string{"r"}}
		} else {
			r.res = scheduling.Resources{Shared: []string{"r"}}
		}
		return r
	}
	cases := []struct {
		name                string
		tasks               []record
		overlaps, overtakes bool
	}{
		{"exclusive after exclusive, in order", []record{task(1, true, 0, 10), task(2, true, 10, 20)}, false, false},
		{"exclusive over exclusive", []record{task(1, true, 0, 10), task(2, true, 5, 20)}, true, false},
		{"shared over exclusive", []record{task(1, true, 0, 10), task(2, false, 5, 20)}, true, false},
		{"exclusive over shared", []record{task(1, false, 0, 10), task(2, true, 5, 20)}, true, false},
		{"two shared together", []record{task(1, false, 0, 10), task(2, false, 5, 20)}, false, false},
		{"later shared starts first among readers", []record{task(1, false, 5, 10), task(2, false, 0, 20)}, false, false},
		{"overtake without overlap", []record{task(1, true, 20, 30), task(2, true, 0, 10)}, false, true},
		{"long exclusive over a non-neighbour", []record{task(1, true, 0, 100), task(2, false, 0, 0), task(3, true, 50, 60)}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, overlaps, overtakes := checkResources(tc.tasks, []string{"r"})
			if (len(overlaps) > 0) != tc.overlaps || (len(overtakes) > 0) != tc.overtakes {
				t.Errorf("overlaps %v, overtakes %v; want overlaps %v, overtakes %v", overlaps, overtakes, tc.overlaps, tc.overtakes)
			}
		})
	}
}
