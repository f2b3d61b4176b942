// Package metrics holds Stint's Prometheus metrics: counters that the
// processes which dispatch and run tasks increment, and gauges read from
// the store when Prometheus scrapes.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stint-dev/stint/store"
)

// Metrics is one process's set of metrics. Its methods are safe for
// concurrent use; a nil *Metrics records nothing.
type Metrics struct {
	registry   *prometheus.Registry
	dispatched *prometheus.CounterVec
	finished   *prometheus.CounterVec
	retries    *prometheus.CounterVec
	runSeconds *prometheus.HistogramVec
}

// New returns the metrics of a process whose store is st: the counters it
// increments, the Go runtime's and the process's metrics, and gauges of
// waiting and running tasks and of workers, read from st at each scrape.
// missingAfter is how old a heartbeat makes a worker count as missing.
func New(st store.Store, missingAfter time.Duration) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		dispatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stint_tasks_dispatched_total",
			Help: "Tasks dispatched by this process, by task name.",
		}, []string{"name"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stint_tasks_finished_total",
			Help: "Tasks run by this process that ended, by task name and final state.",
		}, []string{"name", "state"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stint_task_retries_total",
			Help: "Runs of this process that failed (or were dropped) and whose tasks were scheduled for another attempt, by task name.",
		}, []string{"name"}),
		runSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "stint_task_run_seconds",
			Help:    "Run time of the tasks this process ran, from start to end, by task name and final state.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1 ms to about 4 min
		}, []string{"name", "state"}),
	}
	m.registry.MustRegister(m.dispatched, m.finished, m.retries, m.runSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if st != nil {
		m.registry.MustRegister(&storeCollector{store: st, missingAfter: missingAfter})
	}
	return m
}

// Dispatched counts n dispatched tasks of a name.
func (m *Metrics) Dispatched(name string, n int) {
	if m == nil {
		return
	}
	m.dispatched.WithLabelValues(name).Add(float64(n))
}

// Finished counts a task this process ran and its run time. A run whose
// task is retried (state StateScheduled) counts as a retry, its run time
// under the state "retried".
func (m *Metrics) Finished(name string, state store.State, run time.Duration) {
	if m == nil {
		return
	}
	if state == store.StateScheduled {
		m.retries.WithLabelValues(name).Inc()
		m.runSeconds.WithLabelValues(name, "retried").Observe(run.Seconds())
		return
	}
	m.finished.WithLabelValues(name, string(state)).Inc()
	m.runSeconds.WithLabelValues(name, string(state)).Observe(run.Seconds())
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// storeCollector reads gauges from the store at scrape time.
type storeCollector struct {
	store        store.Store
	missingAfter time.Duration
}

var (
	tasksDesc = prometheus.NewDesc("stint_tasks", "Incomplete tasks in the store, by state.", []string{"state"}, nil)
	// workersDesc counts registered workers; missing ones have not
	// heartbeated within the missing timeout.
	workersDesc = prometheus.NewDesc("stint_workers", "Registered workers, online or missing.", []string{"status"}, nil)
	upDesc      = prometheus.NewDesc("stint_store_up", "1 if the store answered the last scrape.", nil, nil)
	// The queues of resources: the longest ones (at most hotResources,
	// so that the series stay few whatever the number of resources), and
	// all of them together.
	resourceWaitingDesc = prometheus.NewDesc("stint_resource_waiting_tasks",
		"Tasks waiting for a resource, for the longest queues at scrape time.", []string{"resource"}, nil)
	resourcesWaitingDesc = prometheus.NewDesc("stint_resources_waiting_tasks",
		"Queue entries waiting on every resource together (a task waiting for two resources counts twice).", nil, nil)
	resourcesBusyDesc = prometheus.NewDesc("stint_resources_busy", "Resources with holders or waiting tasks.", nil, nil)
)

// hotResources is how many of the longest resource queues a scrape reports
// one by one.
const hotResources = 20

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tasksDesc
	ch <- workersDesc
	ch <- upDesc
	ch <- resourceWaitingDesc
	ch <- resourcesWaitingDesc
	ch <- resourcesBusyDesc
}

// Collect implements prometheus.Collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.store.CountByState(ctx)
	if err == nil {
		for _, s := range []store.State{store.StateScheduled, store.StateWaiting, store.StateRunning, store.StateCanceling} {
			ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
		}
	}
	workers, werr := c.store.Workers(ctx)
	if werr == nil {
		online, missing := 0, 0
		for _, w := range workers {
			if IsMissing(w, c.missingAfter) {
				missing++
			} else {
				online++
			}
		}
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(online), "online")
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(missing), "missing")
	}
	hot, rerr := c.store.Resources(ctx, store.ResourceFilter{Busy: true, Ordering: store.OrderResourceWaitingDesc, Limit: hotResources})
	if rerr == nil {
		for _, r := range hot.Resources {
			if r.Waiting > 0 {
				ch <- prometheus.MustNewConstMetric(resourceWaitingDesc, prometheus.GaugeValue, float64(r.Waiting), r.Name)
			}
		}
		ch <- prometheus.MustNewConstMetric(resourcesWaitingDesc, prometheus.GaugeValue, float64(hot.Waiting))
		ch <- prometheus.MustNewConstMetric(resourcesBusyDesc, prometheus.GaugeValue, float64(hot.Count))
	}
	up := 1.0
	if err != nil || werr != nil || rerr != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up)
}

// IsMissing reports whether a worker counts as missing: marked so, or
// silent for longer than missingAfter.
func IsMissing(w store.WorkerInfo, missingAfter time.Duration) bool {
	return w.Missing || time.Since(w.LastHeartbeat) > missingAfter
}
