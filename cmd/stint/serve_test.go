package main

import (
	"github.com/stint-dev/stint/internal/syncbuf"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// serveProcess is a `stint serve` process a test started.
type serveProcess struct {
	url    string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // how it exited, once exited is closed

	logs syncbuf.Buffer // its output
}

// output returns what the process printed so far.
func (p *serveProcess) output() string { return p.logs.String() }

// freeAddr returns a loopback address no one listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServe runs `stint serve` in dir with args on a free port and returns
// once it answers /healthz; it is stopped with SIGTERM when the test ends.
// args usually holds --db; without it the server uses dir/stint.db.
func startServe(t *testing.T, dir string, args ...string) *serveProcess {
	t.Helper()
	addr := freeAddr(t)
	p := &serveProcess{url: "http://" + addr, exited: make(chan struct{})}
	p.cmd = exec.Command(binary, append([]string{"serve", "--addr", addr, "--workers", "4", "--shutdown-grace", "1s"}, args...)...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "STINT_DB=", "STINT_SERVER=", "STINT_TOKEN=")
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("server log:\n%s", p.output())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case <-p.exited:
			t.Fatalf("stint serve exited: %v\n%s", p.err, p.output())
		default:
		}
		if resp, err := http.Get(p.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stint serve did not answer at %s:\n%s", p.url, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the process with SIGTERM (SIGKILL after 15 s) and waits for it.
func (p *serveProcess) stop(t *testing.T) {
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Errorf("stint serve did not stop within 15s of SIGTERM")
		p.kill()
	}
}

// kill ends the process with SIGKILL and waits for it.
func (p *serveProcess) kill() {
	p.cmd.Process.Kill() //nolint:errcheck
	<-p.exited
}
