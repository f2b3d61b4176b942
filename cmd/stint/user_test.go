package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/internal/syncbuf"
)

// TestUserCommands manages users with the CLI while a server runs, and
// follows what each token may do through the client commands.
func TestUserCommands(t *testing.T) {
	t.Parallel() // a server and a database of its own
	enginetest.Run(t, testUserCommands)
}

func testUserCommands(t *testing.T, eng enginetest.Engine) {
	db := eng.URL(t)
	srv := startServe(t, t.TempDir(), "--db", db)
	user := func(args ...string) (stdout, stderr string, code int) {
		return run(t, append(append([]string{"user"}, args...), "--db", db)...)
	}
	newToken := func(args ...string) string {
		t.Helper()
		out, stderr, code := user(args...)
		token := strings.TrimSpace(out)
		if code != 0 || !strings.HasPrefix(token, "stint_") || strings.Count(out, "\n") != 1 || !strings.Contains(stderr, "shown only now") {
			t.Fatalf("user %v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
		}
		return token
	}
	as := func(token string, args ...string) (stdout, stderr string, code int) {
		return runClient(t, srv.url, append(args, "--token", token)...)
	}

	// No users: the loopback server is open.
	if !strings.Contains(srv.output(), "no users exist: the API is open") {
		t.Errorf("the server did not say it is open:\n%s", srv.output())
	}
	dispatch(t, srv.url, "stint.noop")

	// The first user closes it at once.
	alice := newToken("add", "alice", "--role", "admin")
	_, stderr, code := runClient(t, srv.url, "task", "list")
	if code != 1 {
		t.Fatalf("task list without a token once a user exists: exit %d", code)
	}
	oneErrorLine(t, "task list without a token", stderr, "401")
	bob := newToken("add", "bob")
	out, stderr, code := as(bob, "task", "dispatch", "stint.noop", "--wait")
	if code != 0 {
		t.Fatalf("bob dispatches: exit %d %s", code, stderr)
	}
	bobTask := strings.Fields(out)[0]

	// Bob sees his task only; Alice sees all three; workers are for admins.
	out, _, code = as(bob, "task", "list", "-o", "json")
	if page := decodeJSON[apiv1.Page[apiv1.Task]](t, "bob's list", out); code != 0 || countOf(page.Count) != 1 || page.Results[0].ID.String() != bobTask || page.Results[0].Owner != "bob" {
		t.Fatalf("bob's list: exit %d, %+v", code, page)
	}
	out, _, code = as(alice, "task", "list", "-o", "json")
	if page := decodeJSON[apiv1.Page[apiv1.Task]](t, "alice's list", out); code != 0 || countOf(page.Count) != 2 {
		t.Fatalf("alice's list: exit %d, %+v", code, page)
	}
	if _, stderr, code := as(bob, "worker", "list"); code != 1 || !strings.Contains(stderr, "403") {
		t.Errorf("bob lists workers: exit %d %q", code, stderr)
	}
	if out, _, code := as(alice, "worker", "list", "-o", "json"); code != 0 || len(decodeJSON[[]apiv1.Worker](t, "workers", out)) != 1 {
		t.Errorf("alice lists workers: exit %d %s", code, out)
	}

	// user list shows roles and token ids, never secrets.
	second := newToken("token", "bob")
	out, _, code = user("list", "-o", "json")
	users := decodeJSON[[]userDocument](t, "user list", out)
	if code != 0 || len(users) != 2 || users[0].Name != "alice" || users[0].Role != "admin" || users[1].Role != "user" || len(users[1].Tokens) != 2 {
		t.Fatalf("user list: exit %d, %+v", code, users)
	}
	for _, token := range []string{alice, bob, second} {
		if strings.Contains(out, token[len("stint_")+13:]) {
			t.Errorf("user list shows a token's secret")
		}
	}
	if out, _, code := user("list"); code != 0 || !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, users[1].Tokens[1]) {
		t.Errorf("user list table: exit %d\n%s", code, out)
	}

	// A revoked token is refused at once; the user's other token still works.
	if out, _, code := user("revoke", bob); code != 0 || out != "revoked "+users[1].Tokens[0]+"\n" {
		t.Fatalf("revoke by the whole token: exit %d %q", code, out)
	}
	if _, stderr, code := as(bob, "task", "list"); code != 1 || !strings.Contains(stderr, "401") {
		t.Errorf("a revoked token: exit %d %q", code, stderr)
	}
	if _, _, code := as(second, "task", "list"); code != 0 {
		t.Errorf("bob's other token: exit %d", code)
	}
	// Removing a user revokes all its tokens.
	if out, _, code := user("remove", "bob"); code != 0 || out != "removed bob\n" {
		t.Fatalf("remove: exit %d %q", code, out)
	}
	if _, stderr, code := as(second, "task", "show", bobTask); code != 1 || !strings.Contains(stderr, "401") {
		t.Errorf("a removed user's token: exit %d %q", code, stderr)
	}
	// Alice still sees bob's task, which keeps its owner.
	out, _, code = as(alice, "task", "show", bobTask, "-o", "json")
	if task := decodeJSON[apiv1.Task](t, "show", out); code != 0 || task.Owner != "bob" {
		t.Errorf("bob's task after his removal: exit %d %+v", code, task)
	}

	// Bad input: one line, exit 1.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "alice"}, `user "alice" already exists`},
		{[]string{"add", "two words"}, `user name "two words"`},
		{[]string{"add", "carol", "--role", "root"}, `--role "root"`},
		{[]string{"token", "nobody"}, `user "nobody": no such user`},
		{[]string{"remove", "nobody"}, `user "nobody": no such user`},
		{[]string{"revoke", "0123456789ab"}, `token "0123456789ab": no such token`},
		{[]string{"list", "-o", "yaml"}, `--output "yaml"`},
	} {
		_, stderr, code := user(tc.args...)
		if code != 1 {
			t.Errorf("user %v: exit %d", tc.args, code)
		}
		oneErrorLine(t, "user "+strings.Join(tc.args, " "), stderr, tc.want)
	}

	// Tokens appear neither in the server's log nor, on SQLite, in the file.
	for _, token := range []string{alice, bob, second} {
		secret := token[len("stint_")+13:]
		if strings.Contains(srv.output(), secret) {
			t.Errorf("the server logged a token")
		}
		if path, ok := strings.CutPrefix(db, "sqlite:"); ok {
			for _, f := range []string{path, path + "-wal"} {
				data, err := os.ReadFile(f)
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				if bytes.Contains(data, []byte(secret)) {
					t.Errorf("%s holds a token in clear", filepath.Base(f))
				}
			}
		}
	}
}

// TestServeRefusesAnOpenNonLoopbackAddress: with no users, stint serve
// listens on a non-loopback address only when told --insecure-no-auth, and
// once a user exists it needs no flag.
func TestServeRefusesAnOpenNonLoopbackAddress(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "stint.db")
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := "0.0.0.0:" + port
	_, stderr, code := run(t, "serve", "--db", db, "--addr", addr)
	if code != 1 {
		t.Fatalf("open serve on %s: exit %d", addr, code)
	}
	// serve logs which database it opened, then refuses in one line.
	var errLines []string
	for _, line := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if !strings.HasPrefix(line, "time=") {
			errLines = append(errLines, line)
		}
	}
	oneErrorLine(t, "open serve on "+addr, strings.Join(errLines, "\n"), "no users exist")

	serveBriefly := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, append([]string{"serve", "--db", db, "--addr", addr, "--shutdown-grace", "1s"}, args...)...)
		cmd.Env = append(os.Environ(), "STINT_DB=", "GORACE=atexit_sleep_ms=0")
		logs := &syncbuf.Buffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			cmd.Process.Signal(os.Interrupt) //nolint:errcheck
			cmd.Wait()                       //nolint:errcheck
		}()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if resp, err := http.Get("http://127.0.0.1:" + port + "/healthz"); err == nil {
				resp.Body.Close()
				return logs.String()
			}
		}
		t.Fatalf("serve %v did not answer:\n%s", args, logs.String())
		return ""
	}
	if logs := serveBriefly("--insecure-no-auth"); !strings.Contains(logs, "no users exist: the API is open") {
		t.Errorf("--insecure-no-auth: no warning in\n%s", logs)
	}
	if _, stderr, code := run(t, "user", "add", "admin", "--role", "admin", "--db", db); code != 0 {
		t.Fatalf("user add: exit %d %s", code, stderr)
	}
	if logs := serveBriefly(); strings.Contains(logs, "the API is open") {
		t.Errorf("a server with users said it is open:\n%s", logs)
	}
}
