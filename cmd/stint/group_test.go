package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/internal/syncbuf"
)

// bgClient is a client command running in the background.
type bgClient struct {
	cmd            *exec.Cmd
	stdout, stderr syncbuf.Buffer
	exited         chan struct{}
	code           int
}

// startClient starts a client command of the binary against server; it is
// killed when the test ends if it still runs.
func startClient(t *testing.T, server string, args ...string) *bgClient {
	t.Helper()
	p := &bgClient{exited: make(chan struct{})}
	p.cmd = exec.Command(binary, append(args, "--server", server)...)
	p.cmd.Env = append(os.Environ(), "STINT_DB=", "STINT_SERVER=", "STINT_TOKEN=",
		strings.TrimSpace("GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			p.code = exit.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill() //nolint:errcheck
			<-p.exited
		}
	})
	return p
}

// waitOutput waits until the stream holds want.
func (p *bgClient) waitOutput(t *testing.T, what string, stream *syncbuf.Buffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stream.String(), want); time.Sleep(20 * time.Millisecond) {
		select {
		case <-p.exited:
			if strings.Contains(stream.String(), want) {
				return
			}
			t.Fatalf("%s: exited %d before printing %q; stdout %q, stderr %q", what, p.code, want, p.stdout.String(), p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q not printed within 30s; stdout %q, stderr %q", what, want, p.stdout.String(), p.stderr.String())
		}
	}
}

// wait waits for the command to end and returns its exit code.
func (p *bgClient) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(60 * time.Second):
		t.Fatalf("did not end within 60s; stdout %q, stderr %q", p.stdout.String(), p.stderr.String())
		return 0
	}
}

// createGroup creates a group with the CLI and returns its id.
func createGroup(t *testing.T, server string, args ...string) uuid.UUID {
	t.Helper()
	out, stderr, code := runClient(t, server, append([]string{"group", "create"}, args...)...)
	if code != 0 || stderr != "" {
		t.Fatalf("group create %v: exit %d, stderr %q", args, code, stderr)
	}
	id, err := uuid.Parse(strings.TrimSuffix(out, "\n"))
	if err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("group create printed %q, not an id alone", out)
	}
	return id
}

func TestGroupCommands(t *testing.T) {
	t.Parallel() // a server and a database of its own
	enginetest.Run(t, testGroupCommands)
}

func testGroupCommands(t *testing.T, eng enginetest.Engine) {
	db := eng.URL(t)
	server := startServe(t, t.TempDir(), "--db", db).url
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	api, err := client.New(server)
	if err != nil {
		t.Fatal(err)
	}
	// groupTasks dispatches tasks into a new sealed group through the API.
	groupTasks := func(t *testing.T, tasks ...apiv1.DispatchTask) uuid.UUID {
		t.Helper()
		g, id, err := api.CreateTaskGroup(ctx, apiv1.CreateTaskGroup{Description: t.Name(), Tasks: &tasks})
		if err != nil || g != nil {
			t.Fatalf("create group with tasks: %+v %v", g, err)
		}
		return id
	}
	sleep := func(args string) apiv1.DispatchTask {
		return apiv1.DispatchTask{Name: "stint.sleep", Args: json.RawMessage(args)}
	}

	t.Run("create, show, dispatch into, seal", func(t *testing.T) {
		id := createGroup(t, server, "--description", "nightly sync")
		out, _, code := runClient(t, server, "group", "show", id.String(), "-o", "json")
		g := decodeJSON[apiv1.TaskGroup](t, "show", out)
		if code != 0 || g.ID != id || g.Href != apiv1.TaskGroupHref(id) || g.Description != "nightly sync" || g.AllTasksDispatched || g.Done || g.Counts["total"] != 0 {
			t.Fatalf("show -o json: exit %d, %+v", code, g)
		}
		a := dispatch(t, server, "stint.noop", "--group", id.String())
		b := dispatch(t, server, "stint.noop", "--group", apiv1.TaskGroupHref(id))
		out, stderr, code := runClient(t, server, "group", "seal", id.String())
		if code != 0 || stderr != "" || !strings.HasPrefix(out, id.String()+" ") || strings.Count(out, "\n") != 1 || !strings.Contains(out, " 2: ") {
			t.Fatalf("seal: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		if _, _, code := runClient(t, server, "group", "wait", id.String()); code != 0 {
			t.Fatalf("wait: exit %d", code)
		}
		out, _, code = runClient(t, server, "group", "show", id.String(), "-o", "json")
		g = decodeJSON[apiv1.TaskGroup](t, "show", out)
		if code != 0 || !g.AllTasksDispatched || !g.Done || g.Counts["completed"] != 2 || g.Counts["total"] != 2 || g.Tasks == nil ||
			len(*g.Tasks) != 2 || (*g.Tasks)[0] != apiv1.TaskHref(a) || (*g.Tasks)[1] != apiv1.TaskHref(b) {
			t.Fatalf("after seal and wait: exit %d, %+v", code, g)
		}
		for _, counted := range states {
			if _, ok := g.Counts[counted]; !ok {
				t.Errorf("counts lack %s: %v", counted, g.Counts)
			}
		}
		task, err := api.Task(ctx, a)
		if err != nil || task.TaskGroup == nil || *task.TaskGroup != apiv1.TaskGroupHref(id) {
			t.Fatalf("task in the group: %+v %v", task, err)
		}
		out, _, code = runClient(t, server, "group", "show", id.String())
		for _, want := range []string{"ID:", id.String(), "Description:", "nightly sync", "Created:", "Sealed:", "yes", "Done:", "Tasks:", "2: 2 completed"} {
			if !strings.Contains(out, want) {
				t.Errorf("group show lacks %q: exit %d\n%s", want, code, out)
			}
		}
		// A sealed group takes no more tasks.
		_, stderr, code = runClient(t, server, "task", "dispatch", "stint.noop", "--group", id.String())
		if code != 1 {
			t.Errorf("dispatch into a sealed group: exit %d", code)
		}
		oneErrorLine(t, "dispatch into a sealed group", stderr, "server answered 4")
	})

	t.Run("create --sealed and -o json", func(t *testing.T) {
		id := createGroup(t, server, "--sealed")
		out, _, code := runClient(t, server, "group", "wait", id.String())
		if code != 0 || out != "" {
			t.Errorf("wait for an empty sealed group: exit %d, %q", code, out)
		}
		out, stderr, code := runClient(t, server, "group", "create", "--description", "j", "-o", "json")
		g := decodeJSON[apiv1.TaskGroup](t, "create -o json", out)
		if code != 0 || stderr != "" || g.ID == uuid.Nil || g.Description != "j" || g.AllTasksDispatched {
			t.Fatalf("create -o json: exit %d, %+v", code, g)
		}
	})

	t.Run("wait picks up tasks dispatched meanwhile", func(t *testing.T) {
		id := createGroup(t, server, "--description", "late")
		first := dispatch(t, server, "stint.sleep", "--args", `{"seconds":3}`, "--group", id.String())
		w := startClient(t, server, "group", "wait", id.String())
		w.waitOutput(t, "group wait", &w.stderr, "is not sealed")
		w.waitOutput(t, "group wait", &w.stdout, first.String()+" stint.sleep running\n")
		// Dispatched while the wait follows a running task: only the
		// group's events tell it (it reads the group again every 10 s).
		start := time.Now()
		late := dispatch(t, server, "stint.sleep", "--args", `{"seconds":0.2}`, "--group", id.String())
		w.waitOutput(t, "group wait", &w.stdout, late.String()+" stint.sleep")
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the late task was shown after %s: not from the group's events", d)
		}
		// Every task ended, but the group is not sealed: the wait goes on.
		w.waitOutput(t, "group wait", &w.stdout, first.String()+" stint.sleep completed\n")
		time.Sleep(300 * time.Millisecond)
		select {
		case <-w.exited:
			t.Fatalf("group wait ended before the group was sealed: exit %d, %q", w.code, w.stdout.String())
		default:
		}
		if _, stderr, code := runClient(t, server, "group", "seal", id.String()); code != 0 {
			t.Fatalf("seal: exit %d %s", code, stderr)
		}
		start = time.Now()
		if code := w.wait(t); code != 0 {
			t.Fatalf("group wait: exit %d, stdout %q, stderr %q", code, w.stdout.String(), w.stderr.String())
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("group wait ended %s after the seal", d)
		}
		out := w.stdout.String()
		if !strings.Contains(out, late.String()+" stint.sleep completed\n") || !strings.HasSuffix(out, first.String()+" stint.sleep completed\n") {
			t.Errorf("stdout %q; want the final lines of both tasks", out)
		}
		if lines := strings.Split(strings.TrimRight(w.stderr.String(), "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "stint: task group "+id.String()+" is not sealed") {
			t.Errorf("stderr %q; want the one note that the group is not sealed", w.stderr.String())
		}
	})

	t.Run("wait exit codes", func(t *testing.T) {
		ok := groupTasks(t, sleep(`{"seconds":0.1}`), apiv1.DispatchTask{Name: "stint.noop"})
		out, stderr, code := runClient(t, server, "group", "wait", ok.String())
		if code != 0 || stderr != "" || strings.Count(out, " completed\n") != 2 {
			t.Errorf("completed: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		out, _, code = runClient(t, server, "group", "wait", ok.String(), "-o", "json")
		if g := decodeJSON[apiv1.TaskGroup](t, "wait -o json", out); code != 0 || g.ID != ok || !g.Done || g.Counts["completed"] != 2 {
			t.Errorf("wait -o json: exit %d, %+v", code, g)
		}

		failing := groupTasks(t, sleep(`{"seconds":0.1,"fail":true}`), apiv1.DispatchTask{Name: "stint.noop"})
		out, stderr, code = runClient(t, server, "group", "wait", failing.String())
		if code != 4 || !strings.Contains(out, " stint.sleep failed\n") {
			t.Errorf("failed: exit %d, stdout %q", code, out)
		}
		oneErrorLine(t, "failed", stderr, "task group "+failing.String()+": of 2 tasks: 1 failed, 1 completed; first failure: ")
		if !strings.Contains(stderr, "failed as asked") {
			t.Errorf("failed: the reason lacks the error: %q", stderr)
		}

		slow := groupTasks(t, sleep(`{"seconds":30}`), sleep(`{"seconds":30}`))
		start := time.Now()
		out, stderr, code = runClient(t, server, "group", "wait", slow.String(), "--timeout", "1s")
		if code != 8 || time.Since(start) > 15*time.Second || !strings.HasSuffix(out, "(timeout)\n") {
			t.Errorf("timeout: exit %d after %s, stdout %q", code, time.Since(start), out)
		}
		oneErrorLine(t, "timeout", stderr, "incomplete at the 1s timeout")

		out, stderr, code = runClient(t, server, "group", "cancel", slow.String())
		if code != 0 || stderr != "" || !strings.HasPrefix(out, slow.String()+" sealed 2: ") || strings.Contains(out, "waiting") || strings.Contains(out, "running") {
			t.Fatalf("cancel: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		out, stderr, code = runClient(t, server, "group", "wait", slow.String())
		if code != 16 || strings.Count(out, " stint.sleep canceled\n") != 2 {
			t.Errorf("canceled: exit %d, stdout %q", code, out)
		}
		oneErrorLine(t, "canceled", stderr, "2 canceled")

		// An unsealed group is not done at the timeout, even with no task
		// left to run: 8, after the note that it is not sealed.
		open := createGroup(t, server)
		dispatch(t, server, "stint.noop", "--group", open.String())
		_, stderr, code = runClient(t, server, "group", "wait", open.String(), "--timeout", "1500ms")
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		if code != 8 || len(lines) != 2 || !strings.Contains(lines[0], "is not sealed: waiting") || !strings.HasPrefix(lines[1], "stint: ") ||
			!strings.Contains(lines[1], "is not sealed at the 1.5s timeout") {
			t.Errorf("unsealed at the timeout: exit %d, stderr %q", code, stderr)
		}
	})

	t.Run("list", func(t *testing.T) {
		out, _, code := runClient(t, server, "group", "list", "-o", "json")
		page := decodeJSON[apiv1.Page[apiv1.TaskGroup]](t, "list", out)
		if code != 0 || countOf(page.Count) < 8 || len(page.Results) != countOf(page.Count) {
			t.Fatalf("list: exit %d, %+v", code, page)
		}
		out, _, code = runClient(t, server, "group", "list", "--unsealed", "-o", "json")
		page = decodeJSON[apiv1.Page[apiv1.TaskGroup]](t, "list --unsealed", out)
		if code != 0 || countOf(page.Count) < 2 {
			t.Fatalf("list --unsealed: exit %d, %+v", code, page)
		}
		for _, g := range page.Results {
			if g.AllTasksDispatched || g.Tasks != nil {
				t.Errorf("list --unsealed: %+v", g)
			}
		}
		out, _, code = runClient(t, server, "group", "list", "--sealed", "--limit", "2", "-o", "json")
		page = decodeJSON[apiv1.Page[apiv1.TaskGroup]](t, "list --sealed", out)
		if code != 0 || len(page.Results) != 2 || page.Next == nil || !page.Results[0].AllTasksDispatched {
			t.Fatalf("list --sealed --limit 2: exit %d, %+v", code, page)
		}
		out, stderr, code := runClient(t, server, "group", "list", "--limit", "3")
		if code != 0 || !strings.HasPrefix(out, "ID ") || strings.Count(out, "\n") != 4 || !strings.Contains(out, " STATUS ") || !strings.HasSuffix(stderr, "; --offset 3 for more)\n") {
			t.Errorf("list table: exit %d\n%s%s", code, out, stderr)
		}
	})

	t.Run("dispatch --immediate", func(t *testing.T) {
		out, stderr, code := runClient(t, server, "task", "dispatch", "stint.noop", "--immediate", "-o", "json")
		if task := decodeJSON[apiv1.Task](t, "immediate", out); code != 0 || task.State != "completed" {
			t.Fatalf("immediate: exit %d, %+v, %s", code, task, stderr)
		}
		busy := dispatch(t, server, "stint.sleep", "--args", `{"seconds":30}`, "--exclusive", "imm:1")
		for task, _ := api.Task(ctx, busy); task.State != "running"; task, _ = api.Task(ctx, busy) {
			time.Sleep(20 * time.Millisecond)
		}
		out, _, code = runClient(t, server, "task", "dispatch", "stint.noop", "--exclusive", "imm:1", "--immediate", "--no-defer", "-o", "json")
		if task := decodeJSON[apiv1.Task](t, "immediate --no-defer", out); code != 0 || task.State != "skipped" {
			t.Errorf("immediate --no-defer on a busy resource: exit %d, %+v", code, task)
		}
		out, _, code = runClient(t, server, "task", "dispatch", "stint.noop", "--exclusive", "imm:1", "--immediate", "-o", "json")
		if task := decodeJSON[apiv1.Task](t, "immediate deferred", out); code != 0 || task.State != "waiting" {
			t.Errorf("immediate on a busy resource: exit %d, %+v", code, task)
		}
		if _, err := api.CancelTask(ctx, busy); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("client", func(t *testing.T) {
		// A bad task names itself, and nothing is dispatched.
		before, err := api.ListTaskGroups(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		tasks := []apiv1.DispatchTask{{Name: "stint.noop"}, {Name: "no.such.task"}}
		_, _, err = api.CreateTaskGroup(ctx, apiv1.CreateTaskGroup{Tasks: &tasks})
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || !strings.HasPrefix(apiErr.Detail, "tasks[1].name: ") {
			t.Errorf("a bad task: %v", err)
		}
		if after, err := api.ListTaskGroups(ctx, nil); err != nil || countOf(after.Count) != countOf(before.Count) {
			t.Errorf("a failed create left a group: %d then %d (%v)", countOf(before.Count), countOf(after.Count), err)
		}
		// Delete: a final task goes, a running one stays.
		id, err := api.Dispatch(ctx, apiv1.DispatchTask{Name: "stint.noop", Immediate: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := api.DeleteTask(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := api.Task(ctx, id); !client.IsStatus(err, http.StatusNotFound) {
			t.Errorf("a deleted task: %v", err)
		}
		long, err := api.Dispatch(ctx, apiv1.DispatchTask{Name: "stint.sleep", Args: json.RawMessage(`{"seconds":30}`)})
		if err != nil {
			t.Fatal(err)
		}
		if err := api.DeleteTask(ctx, long); !client.IsStatus(err, http.StatusConflict) {
			t.Errorf("delete of an incomplete task: %v", err)
		}
		if _, err := api.CancelTask(ctx, long); err != nil {
			t.Fatal(err)
		}
		if _, err := api.TaskGroup(ctx, uuid.New()); !client.IsStatus(err, http.StatusNotFound) {
			t.Errorf("an unknown group: %v", err)
		}
	})

	t.Run("bad input gives one line and a non-zero exit", func(t *testing.T) {
		cases := []struct {
			args []string
			want string
		}{
			{[]string{"group", "show", uuid.New().String()}, "404 Not Found"},
			{[]string{"group", "wait", uuid.New().String()}, "404 Not Found"},
			{[]string{"group", "seal", uuid.New().String()}, "404 Not Found"},
			{[]string{"group", "cancel", uuid.New().String()}, "404 Not Found"},
			{[]string{"task", "dispatch", "stint.noop", "--group", uuid.New().String()}, "server answered 4"},
			{[]string{"task", "purge", "--finished-before", "2026-01-02T00:00:00Z", "--state", "failed", "--state", "waiting"}, `--state "waiting": not a final state`},
		}
		for _, tc := range cases {
			_, stderr, code := runClient(t, server, tc.args...)
			if code != 1 {
				t.Errorf("%v: exit %d", tc.args, code)
			}
			oneErrorLine(t, strings.Join(tc.args, " "), stderr, tc.want)
		}
	})

	// Last: purge deletes what the tests above made, and a user ends open
	// mode.
	t.Run("purge", func(t *testing.T) {
		ended := func(args ...string) uuid.UUID {
			t.Helper()
			id := dispatch(t, server, args...)
			runClient(t, server, "task", "wait", id.String())
			return id
		}
		completed := ended("stint.noop")
		failed := ended("stint.sleep", "--args", `{"seconds":0.1,"fail":true}`)
		recent := ended("stint.noop")
		if _, err := api.Task(ctx, completed); err != nil {
			t.Fatal(err)
		}

		// Nothing finished 30 days ago: the defaults delete nothing.
		out, stderr, code := runClient(t, server, "task", "purge", "-o", "json")
		purge := decodeJSON[apiv1.Task](t, "purge -o json", out)
		if code != 0 || stderr != "" || purge.Name != "stint.purge" {
			t.Fatalf("purge -o json: exit %d, %+v, %s", code, purge, stderr)
		}
		if _, _, code := runClient(t, server, "task", "wait", purge.ID.String()); code != 0 {
			t.Fatalf("wait for the purge: exit %d", code)
		}
		if _, err := api.Task(ctx, completed); err != nil {
			t.Fatalf("the default purge deleted a recent task: %v", err)
		}

		time.Sleep(10 * time.Millisecond)
		cutoff := time.Now().UTC().Format(time.RFC3339Nano)
		time.Sleep(10 * time.Millisecond)
		later := ended("stint.noop")
		out, stderr, code = runClient(t, server, "task", "purge", "--finished-before", cutoff, "--wait")
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if code != 0 || stderr != "" || len(lines) < 3 || !strings.HasSuffix(lines[len(lines)-2], " stint.purge completed") || !strings.HasPrefix(lines[len(lines)-1], "deleted ") {
			t.Fatalf("purge --wait: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		for _, gone := range []uuid.UUID{completed, recent} {
			if _, err := api.Task(ctx, gone); !client.IsStatus(err, http.StatusNotFound) {
				t.Errorf("completed task %s after the purge: %v", gone, err)
			}
		}
		for _, kept := range []uuid.UUID{failed, later} {
			if _, err := api.Task(ctx, kept); err != nil {
				t.Errorf("task %s after the purge: %v", kept, err)
			}
		}
		// A duration means that long ago; states add up.
		out, stderr, code = runClient(t, server, "task", "purge", "--finished-before", "0s", "--state", "failed,completed", "--wait", "-o", "json")
		if task := decodeJSON[apiv1.Task](t, "purge --wait -o json", out); code != 0 || task.State != "completed" || !strings.Contains(string(task.Result), `"deleted"`) {
			t.Fatalf("purge --wait -o json: exit %d, %+v, %s", code, task, stderr)
		}
		for _, gone := range []uuid.UUID{failed, later} {
			if _, err := api.Task(ctx, gone); !client.IsStatus(err, http.StatusNotFound) {
				t.Errorf("task %s after the second purge: %v", gone, err)
			}
		}

		// Only admins purge.
		out, stderr, code = run(t, "user", "add", "bob", "--db", db)
		if code != 0 {
			t.Fatalf("user add: exit %d %s", code, stderr)
		}
		_, stderr, code = runClient(t, server, "task", "purge", "--token", strings.TrimSpace(out))
		if code != 1 {
			t.Errorf("purge by a user: exit %d", code)
		}
		oneErrorLine(t, "purge by a user", stderr, "403 Forbidden")
	})
}

// TestGroupCommandsWithoutServer checks that bad flags are refused before
// any request: the server named is unreachable, so an error that names the
// flag was not a request.
func TestGroupCommandsWithoutServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := "http://" + l.Addr().String()
	l.Close()
	id := uuid.New().String()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"group", "create"}, "cannot reach the Stint server at " + server},
		{[]string{"group", "wait", id}, "cannot reach the Stint server at " + server},
		{[]string{"task", "purge"}, "cannot reach the Stint server at " + server},
		{[]string{"group", "create", "extra"}, `unknown command "extra" for "stint group create"`},
		{[]string{"group", "create", "-o", "yaml"}, `--output "yaml"`},
		{[]string{"group", "show"}, "0 arguments: give one task group id"},
		{[]string{"group", "show", "nope"}, `task group id: "nope" is not an id`},
		{[]string{"group", "show", apiv1.TaskHref(uuid.New())}, "task group id: "},
		{[]string{"group", "seal", id, id}, "2 arguments"},
		{[]string{"group", "cancel", "x"}, "task group id"},
		{[]string{"group", "wait", "x"}, "task group id"},
		{[]string{"group", "wait", id, "--timeout", "-1s"}, "--timeout -1s: must not be negative"},
		{[]string{"group", "wait", id, "--timeout", "soon"}, `"--timeout"`},
		{[]string{"group", "list", "--sealed", "--unsealed"}, "--sealed and --unsealed"},
		{[]string{"group", "list", "--limit", "0"}, "--limit 0"},
		{[]string{"group", "list", "--offset", "-1"}, "--offset -1"},
		{[]string{"task", "dispatch", "stint.noop", "--no-defer"}, "--no-defer: only with --immediate"},
		{[]string{"task", "dispatch", "stint.noop", "--group", "nope"}, `--group: "nope" is not an id`},
		{[]string{"task", "purge", "--finished-before", "yesterday"}, `--finished-before: "yesterday" is not a time`},
		{[]string{"task", "purge", "--finished-before", "-5m"}, "--finished-before"},
		{[]string{"task", "purge", "--state", "running"}, `--state "running": not a final state`},
		{[]string{"task", "purge", "--state", "done"}, `--state "done"`},
		{[]string{"task", "purge", "--timeout", "1s"}, "--timeout: only with --wait"},
		{[]string{"task", "purge", "--wait", "--timeout", "-1s"}, "must not be negative"},
		{[]string{"task", "purge", "x"}, `unknown command "x" for "stint task purge"`},
	}
	for _, tc := range cases {
		_, stderr, code := runClient(t, server, tc.args...)
		if code != 1 {
			t.Errorf("%v: exit %d", tc.args, code)
		}
		oneErrorLine(t, strings.Join(tc.args, " "), stderr, tc.want)
	}
	_, stderr, code := run(t, "group", "nope")
	if code != 1 {
		t.Errorf("group nope: exit %d", code)
	}
	oneErrorLine(t, "group nope", stderr, `unknown command "nope" for "stint group"`)
}

func TestGroupCountsText(t *testing.T) {
	cases := []struct {
		counts map[string]int
		want   string
	}{
		{map[string]int{"total": 0, "waiting": 0, "completed": 0}, "0"},
		{nil, "0"},
		{map[string]int{"total": 5, "completed": 3, "running": 1, "waiting": 1, "failed": 0}, "5: 1 waiting, 1 running, 3 completed"},
		{map[string]int{"total": 3, "dropped": 1, "zzz": 1, "aaa": 1}, "3: 1 dropped, 1 aaa, 1 zzz"},
		{map[string]int{"completed": 2}, "2: 2 completed"}, // no total: the sum
	}
	for _, tc := range cases {
		if got := countsText(tc.counts); got != tc.want {
			t.Errorf("%v: %q; want %q", tc.counts, got, tc.want)
		}
	}
	g := &apiv1.TaskGroup{ID: uuid.MustParse("01900000-0000-7000-8000-000000000001"), Counts: map[string]int{"total": 1, "running": 1}}
	if got := groupLine(g); got != "01900000-0000-7000-8000-000000000001 unsealed 1: 1 running" {
		t.Errorf("groupLine %q", got)
	}
	g.AllTasksDispatched = true
	if groupStatus(g) != "sealed" {
		t.Error("sealed")
	}
	g.Done = true
	if groupStatus(g) != "done" {
		t.Error("done")
	}
}

func TestGroupListQuery(t *testing.T) {
	q, err := groupListQuery("alice", false, true, 10, 20)
	if err != nil || q.Encode() != "all_tasks_dispatched=false&limit=10&offset=20&owner=alice" {
		t.Fatalf("%v %v", q.Encode(), err)
	}
	if q, _ := groupListQuery("", true, false, 100, 0); q.Encode() != "all_tasks_dispatched=true&limit=100" {
		t.Fatalf("sealed: %v", q.Encode())
	}
}

func TestPurgeBody(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	body, err := purgeBody("720h", []string{"completed", " failed", "completed"}, now)
	if err != nil || !body.FinishedBefore.Equal(now.Add(-720*time.Hour)) || strings.Join(body.States, ",") != "completed,failed" {
		t.Fatalf("%+v %v", body, err)
	}
	b, _ := json.Marshal(body)
	if string(b) != `{"finished_before":"2026-01-30T12:00:00.000000Z","states":["completed","failed"]}` {
		t.Errorf("JSON %s", b)
	}
	body, err = purgeBody("", nil, now)
	if b, _ := json.Marshal(body); err != nil || string(b) != `{}` {
		t.Errorf("defaults: %s %v", b, err)
	}
	body, err = purgeBody("2026-01-02T03:04:05+01:00", nil, now)
	if err != nil || body.FinishedBefore.Format(time.RFC3339) != "2026-01-02T02:04:05Z" {
		t.Errorf("RFC 3339: %+v %v", body, err)
	}
}

func TestDispatchOptions(t *testing.T) {
	group := uuid.MustParse("01900000-0000-7000-8000-000000000001")
	var body apiv1.DispatchTask
	if err := dispatchOptions(&body, apiv1.TaskGroupHref(group), true, true); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(body)
	if string(b) != `{"name":"","task_group":"01900000-0000-7000-8000-000000000001","immediate":true,"deferred":false}` {
		t.Errorf("JSON %s", b)
	}
	body = apiv1.DispatchTask{}
	if err := dispatchOptions(&body, "", true, false); err != nil || !body.Immediate || body.Deferred != nil {
		t.Errorf("--immediate alone: %+v %v", body, err)
	}
	if err := dispatchOptions(&body, "", false, true); err == nil {
		t.Error("--no-defer without --immediate was taken")
	}
}
