package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// cluster is a private PostgreSQL cluster: initdb'd into a temporary
// directory, listening on 127.0.0.1 on a port of its own, so that the test
// can restart it without disturbing the tests that share the server at
// 127.0.0.1:5432. Its postmaster is a child of the test process that dies
// with it (Pdeathsig), so that a test killed by its timeout leaves no
// server behind.
type cluster struct {
	t    testing.TB
	bin  string // the directory of the server's binaries
	dir  string // the temporary directory: socket and log; data below
	data string
	port int
	cred *syscall.Credential // the postgres OS user's, when the test runs as root
	log  *os.File

	cmd    *exec.Cmd
	exited chan struct{}

	// URL connects to the cluster's postgres database as postgres.
	URL string
}

// serverBinaries returns the directory of the newest PostgreSQL server
// binaries under /usr/lib/postgresql, or $STINT_CHAOS_PG_BIN.
func serverBinaries() (string, error) {
	if dir := os.Getenv("STINT_CHAOS_PG_BIN"); dir != "" {
		return dir, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(found) == 0 {
		return "", errors.New("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (install postgresql or set STINT_CHAOS_PG_BIN)")
	}
	version := func(path string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(path))), 64)
		return v
	}
	best := slices.MaxFunc(found, func(a, b string) int {
		switch va, vb := version(a), version(b); {
		case va < vb:
			return -1
		case va > vb:
			return 1
		}
		return 0
	})
	return filepath.Dir(best), nil
}

// serverCredential says whom initdb and postgres run as: the postgres OS
// user when the test runs as root (nil credential: the test's own user
// when that is postgres). Any other user cannot run the cluster, and the
// test is skipped.
func serverCredential() (cred *syscall.Credential, skip string) {
	if os.Geteuid() != 0 {
		if u, err := user.Current(); err == nil && u.Username == "postgres" {
			return nil, ""
		}
		return nil, "the chaos check runs its own PostgreSQL cluster and needs to run as root (CI does) or as the postgres OS user"
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, "no postgres OS user to run the chaos check's PostgreSQL cluster as: " + err.Error()
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, "the postgres OS user has a non-numeric uid or gid"
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, ""
}

// inCI reports whether the tests run in CI (CI=true, as CI services
// set it).
func inCI() bool { return os.Getenv("CI") == "true" }

// skipOutsideCI skips the test, saying why, outside CI; in CI, where
// these checks must run, it fails the test instead.
func skipOutsideCI(t *testing.T, why string) {
	t.Helper()
	if inCI() {
		t.Fatalf("%s; CI=true, where this check must run, so it fails instead of skipping", why)
	}
	t.Skip(why + " (skipped outside CI only; with CI=true it fails)")
}

// startCluster initdb's a cluster, starts it, and stops it and removes its
// directory when the test ends. When this user cannot run one or no
// server binaries are installed, it skips the test outside CI and fails it
// in CI.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	cred, skip := serverCredential()
	if skip != "" {
		skipOutsideCI(t, skip)
	}
	bin, err := serverBinaries()
	if err != nil {
		skipOutsideCI(t, err.Error())
	}
	// Not t.TempDir: its parents are private to root, and the server runs
	// as postgres.
	dir, err := os.MkdirTemp("", "stint-chaos-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, bin: bin, dir: dir, data: filepath.Join(dir, "data"), cred: cred}
	t.Cleanup(func() {
		c.stop()
		if c.log != nil {
			c.log.Close()
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing the cluster's directory: %v", err)
		}
	})
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	if c.log, err = os.Create(filepath.Join(dir, "postgres.log")); err != nil {
		t.Fatal(err)
	}
	initdb := c.command("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	if c.port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// command prepares one of the server's binaries to run as the server's
// user, killed if the test process dies.
func (c *cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start starts the postmaster and waits until it accepts connections.
func (c *cluster) start() error {
	c.cmd = c.command("postgres", "-D", c.data, "-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+c.dir,
		"-c", "fsync=off",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB")
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	exited := make(chan struct{})
	c.exited = exited
	go func(cmd *exec.Cmd) { cmd.Wait(); close(exited) }(c.cmd) //nolint:errcheck // seen through exited
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.URL)
		if err == nil {
			conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		select {
		case <-exited:
			return fmt.Errorf("postgres exited at start:\n%s", c.logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within 60s: %v\n%s", err, c.logTail())
		}
	}
}

// stop shuts the server down at once, as pg_ctl stop -m immediate does
// (SIGQUIT: no checkpoint, crash recovery at the next start), and waits for
// it to exit.
func (c *cluster) stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGQUIT) //nolint:errcheck // it may have exited
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill() //nolint:errcheck
		<-c.exited
	}
	c.cmd = nil
}

// restart stops the server immediately and starts it again.
func (c *cluster) restart() error {
	c.stop()
	return c.start()
}

// logTail returns the end of the server's log.
func (c *cluster) logTail() string {
	b, err := os.ReadFile(c.log.Name())
	if err != nil {
		return err.Error()
	}
	return tail(string(b), 30)
}
