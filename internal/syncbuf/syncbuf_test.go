package syncbuf_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stint-dev/stint/internal/syncbuf"
)

// TestConcurrentWritesAndReads is meaningful under -race: writers and a
// reader at once, and no write lost.
func TestConcurrentWritesAndReads(t *testing.T) {
	var b syncbuf.Buffer
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				fmt.Fprintf(&b, "%d:%d\n", w, i)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_ = b.String()
		}
	}()
	wg.Wait()
	<-done
	if n := strings.Count(b.String(), "\n"); n != 400 {
		t.Fatalf("%d lines, want 400", n)
	}
}

func ExampleBuffer() {
	var out syncbuf.Buffer
	fmt.Fprint(&out, "written by one goroutine, ")
	fmt.Fprint(&out, "read by another")
	fmt.Println(out.String())
	// Output: written by one goroutine, read by another
}
