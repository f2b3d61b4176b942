package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/metrics"
	"github.com/stint-dev/stint/store"
)

// A run that ends its task counts as finished in its state; a run whose
// task is retried (StateScheduled) counts as a retry, not as finished.
func TestFinishedAndRetries(t *testing.T) {
	m := metrics.New(nil, time.Second)
	m.Finished("repo.sync", store.StateFailed, time.Millisecond)
	m.Finished("repo.sync", store.StateScheduled, time.Millisecond)
	m.Finished("repo.sync", store.StateScheduled, time.Millisecond)
	m.Dispatched("repo.sync", 3)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`stint_tasks_finished_total{name="repo.sync",state="failed"} 1`,
		`stint_task_retries_total{name="repo.sync"} 2`,
		`stint_task_run_seconds_count{name="repo.sync",state="retried"} 2`,
		`stint_tasks_dispatched_total{name="repo.sync"} 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, `state="scheduled"`) {
		t.Errorf("a retry counted as finished scheduled:\n%s", text)
	}
}
