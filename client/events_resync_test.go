package client

import (
	"errors"
	"io"
	"testing"
)

// TestEventStreamResync: a resync event is ErrResync, and the stream goes
// on after it.
func TestEventStreamResync(t *testing.T) {
	s := stream(": connected\n\nevent: task\ndata: {\"state\": \"waiting\"}\n\nevent: resync\ndata: {}\n\nevent: task\ndata: {\"state\": \"running\"}\n\n")
	if ev, err := s.Next(); err != nil || ev.State != "waiting" {
		t.Fatalf("first: %+v, %v", ev, err)
	}
	if _, err := s.Next(); !errors.Is(err, ErrResync) {
		t.Fatalf("second: %v, want ErrResync", err)
	}
	if ev, err := s.Next(); err != nil || ev.State != "running" {
		t.Fatalf("after the resync: %+v, %v", ev, err)
	}
	if _, err := s.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}
