package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/internal/syncbuf"
)

// apiProcess is a running `stint api`.
type apiProcess struct {
	url    string
	stderr *syncbuf.Buffer
}

var servingRE = regexp.MustCompile(`addr=(http://[0-9.:]+)`)

// startAPI starts `stint api` on a free port and returns its base URL once
// it listens.
func startAPI(t *testing.T, bin, dsn string) *apiProcess {
	t.Helper()
	p := &apiProcess{stderr: &syncbuf.Buffer{}}
	cmd := exec.Command(bin, "api", "--db", dsn, "--addr", "127.0.0.1:0")
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()          //nolint:errcheck
	t.Cleanup(func() { cmd.Process.Kill(); <-exited }) //nolint:errcheck
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := servingRE.FindStringSubmatch(p.stderr.String()); m != nil {
			p.url = m[1]
			return p
		}
		select {
		case <-exited:
			t.Fatalf("stint api exited:\n%s", p.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("stint api did not start:\n%s", p.stderr.String())
		}
	}
}

func (p *apiProcess) request(t *testing.T, method, path, body string, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, p.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s%s: %d, want %d: %s", method, p.url, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTwoAPINodesOneWorker: a task dispatched through one API node is
// followed through the events of the other, canceled through it, and the
// worker, a third process, stops it.
func TestTwoAPINodesOneWorker(t *testing.T) {
	bin := buildStint(t)
	dsn := pgtest.Database(t)
	if out, err := exec.Command(bin, "migrate", "--db", dsn).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	one, two := startAPI(t, bin, dsn), startAPI(t, bin, dsn)
	startWorker(t, bin, dsn, "w1")

	var ref apiv1.TaskRef
	one.request(t, "POST", "/api/v1/tasks", `{"name": "stint.sleep", "args": {"seconds": 60}}`, 202, &ref)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", two.url+"/api/v1/events?task="+ref.Task, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan apiv1.TaskEvent, 100)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev apiv1.TaskEvent
				if json.Unmarshal([]byte(data), &ev) == nil {
					events <- ev
				}
			}
		}
	}()
	var task apiv1.Task
	two.request(t, "GET", ref.Task, "", 200, &task) // read after subscribing: no change is missed
	waitFor := func(state string) {
		t.Helper()
		if task.State == state {
			return
		}
		for ev := range events {
			if ev.Task != ref.Task {
				t.Fatalf("event of another task: %+v", ev)
			}
			if ev.State == state {
				return
			}
		}
		t.Fatalf("the event stream of the second node ended before %s", state)
	}
	waitFor("running")
	started := time.Now()
	two.request(t, "PATCH", ref.Task, `{"state": "canceled"}`, 200, &task)
	task.State = "" // wait for the event
	waitFor("canceled")
	if d := time.Since(started); d > time.Second {
		t.Fatalf("cancel took %s", d)
	}
	one.request(t, "GET", ref.Task, "", 200, &task)
	if task.State != "canceled" || task.Worker == nil || task.Worker.Name != "w1" {
		t.Fatalf("the first node sees %s, worker %+v", task.State, task.Worker)
	}
}

// TestUniqueKeyAcrossTwoAPINodes: 50 concurrent dispatches of one unique
// key through two API processes create exactly one task; the other 49 are
// answered with it, deduplicated.
func TestUniqueKeyAcrossTwoAPINodes(t *testing.T) {
	bin := buildStint(t)
	dsn := pgtest.Database(t)
	if out, err := exec.Command(bin, "migrate", "--db", dsn).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	nodes := []*apiProcess{startAPI(t, bin, dsn), startAPI(t, bin, dsn)}
	const n = 50
	refs := make([]apiv1.TaskRef, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i%2].request(t, "POST", "/api/v1/tasks",
				`{"name": "stint.sleep", "args": {"seconds": 60}, "exclusive_resources": ["repo:1"], "unique_key": "sync-repo-1"}`, 202, &refs[i])
		}()
	}
	wg.Wait()
	hrefs, dups := map[string]bool{}, 0
	for _, r := range refs {
		hrefs[r.Task] = true
		if r.Deduplicated {
			dups++
		}
	}
	var page apiv1.Page[apiv1.Task]
	nodes[0].request(t, "GET", "/api/v1/tasks?name=stint.sleep", "", 200, &page)
	if len(hrefs) != 1 || dups != n-1 || page.Count == nil || *page.Count != 1 {
		t.Fatalf("%d dispatches of one key: %d tasks answered (%d deduplicated), %v tasks stored", n, len(hrefs), dups, page.Count)
	}
}
