package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// dialServe opens a raw TCP connection to a serve process.
func dialServe(t *testing.T, p *serveProcess) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// closedWithin reads conn until the server closes it and returns how long
// that took, failing the test after limit.
func closedWithin(t *testing.T, conn net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	conn.SetReadDeadline(start.Add(limit)) //nolint:errcheck
	_, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server still holds the connection after %v", limit)
	}
	return time.Since(start)
}

// TestServeCutsOffSlowAndIdleClients: a client that dribbles its body one
// byte at a time is cut off at --read-timeout, an idle keep-alive
// connection is closed at --idle-timeout, and an event stream, idle or
// not, outlives both and --write-timeout.
func TestServeCutsOffSlowAndIdleClients(t *testing.T) {
	p := startServe(t, t.TempDir(), "--read-timeout", "1s", "--idle-timeout", "1s", "--write-timeout", "1s")

	t.Run("dribbled body", func(t *testing.T) {
		conn := dialServe(t, p)
		if _, err := io.WriteString(conn, "POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		go func() { // 20 s to send the body, one byte each 200 ms
			for range 100 {
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
		if took := closedWithin(t, conn, 5*time.Second); took > 4*time.Second {
			t.Fatalf("cut off after %v, want about 1s", took)
		}
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		conn := dialServe(t, p)
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("status %d, close %v", resp.StatusCode, resp.Close)
		}
		if took := closedWithin(t, conn, 5*time.Second); took > 4*time.Second {
			t.Fatalf("idle connection closed after %v, want about 1s", took)
		}
	})

	t.Run("event stream lives on", func(t *testing.T) {
		resp, err := http.Get(p.url + "/api/v1/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("events: %d", resp.StatusCode)
		}
		lines := make(chan string, 100)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		time.Sleep(2500 * time.Millisecond) // past every timeout
		post, err := http.Post(p.url+"/api/v1/tasks", "application/json", strings.NewReader(`{"name": "stint.noop"}`))
		if err != nil {
			t.Fatal(err)
		}
		post.Body.Close()
		if post.StatusCode != http.StatusAccepted {
			t.Fatalf("dispatch: %d", post.StatusCode)
		}
		timeout := time.After(10 * time.Second)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatal("the event stream ended")
				}
				if strings.HasPrefix(line, "event: task") {
					return
				}
			case <-timeout:
				t.Fatal("no task event on a stream older than the timeouts")
			}
		}
	})
}

// TestServeCapsConnections: beyond --max-connections, a connection waits
// until another closes.
func TestServeCapsConnections(t *testing.T) {
	p := startServe(t, t.TempDir(), "--max-connections", "2", "--idle-timeout", "1m")
	http.DefaultClient.CloseIdleConnections() // startServe's own
	time.Sleep(200 * time.Millisecond)
	get := func(conn net.Conn, within time.Duration) error {
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(within)) //nolint:errcheck
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	held := []net.Conn{dialServe(t, p), dialServe(t, p)}
	for _, c := range held {
		if err := get(c, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	third := dialServe(t, p)
	if err := get(third, time.Second); err == nil {
		t.Fatal("a third connection was served beside two held ones")
	}
	held[0].Close()
	third.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	resp, err := http.ReadResponse(bufio.NewReader(third), nil)
	if err != nil {
		t.Fatalf("the third connection was not served once one closed: %v", err)
	}
	resp.Body.Close()
}
