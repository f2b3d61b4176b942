package api

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRecentKeepsOnlySuccesses: a value read is served for the TTL; a read
// that fails is returned to its caller and not kept, so that the next
// request reads again.
func TestRecentKeepsOnlySuccesses(t *testing.T) {
	ctx := context.Background()
	c := &recent[int]{ttl: time.Hour}
	reads := 0
	fail := errors.New("down")
	read := func(context.Context) (int, error) {
		reads++
		if reads == 1 {
			return 0, fail
		}
		return reads, nil
	}
	if _, err := c.get(ctx, read); !errors.Is(err, fail) {
		t.Fatalf("first read: %v, want the failure", err)
	}
	for range 3 {
		if v, err := c.get(ctx, read); v != 2 || err != nil {
			t.Fatalf("got %d %v, want the second read's 2", v, err)
		}
	}
	if reads != 2 {
		t.Fatalf("%d reads, want 2", reads)
	}
	c.readAt = c.readAt.Add(-2 * time.Hour) // stale
	if v, _ := c.get(ctx, read); v != 3 {
		t.Fatalf("after the TTL: %d, want a new read", v)
	}
}
