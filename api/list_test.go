package api_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
)

// TestListPagesWithoutCountingEverything: a list counts its total only
// where that is cheap (the store's rule, tested in the conformance
// suite), answers count null beyond it, and says by next whether another
// page follows either way, also on the last full page.
func TestListPagesWithoutCountingEverything(t *testing.T) {
	t.Parallel() // a server and a database of its own
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		many := store.CountBound + 5 // test.echo: one more than the bound
		for done := 0; done < many; {
			batch := make([]store.NewTask, 0, 1000)
			for ; len(batch) < cap(batch) && done < many; done++ {
				name := "test.echo"
				if done < 4 {
					name = "stint.noop"
				}
				batch = append(batch, store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: name, Args: json.RawMessage(`{}`)})
			}
			if _, err := e.store.Dispatch(e.ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			query string
			count int // -1: null
			next  bool
			shown int
		}{
			{"limit=20", many, true, 20},
			{"limit=20&state=waiting", many, true, 20},
			{"limit=20&name=test.echo", -1, true, 20},
			{"limit=2&name=stint.noop", 4, true, 2},
			{"limit=2&offset=2&name=stint.noop", 4, false, 2}, // the last page is full: no next
			{"limit=4&name=stint.noop", 4, false, 4},
			{"limit=2&offset=4&name=stint.noop", 4, false, 0},
			{"limit=1000&offset=9500&name=test.echo", many - 4, false, many - 4 - 9500},
		} {
			var page apiv1.Page[apiv1.Task]
			e.must("GET", "/api/v1/tasks?"+tc.query, nil, 200, &page)
			if countOf(page.Count) != tc.count || (page.Next != nil) != tc.next || len(page.Results) != tc.shown {
				t.Errorf("%s: count %d, next %v, %d results; want %d, %v, %d", tc.query, countOf(page.Count), page.Next, len(page.Results), tc.count, tc.next, tc.shown)
			}
		}
	})
}

// TestLargeAnswersAreCompressed: a client that accepts gzip gets a large
// list compressed, and the same JSON once decompressed; a small answer and
// a client that does not ask are answered plainly.
func TestLargeAnswersAreCompressed(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		for range 20 {
			e.dispatch(apiv1.DispatchTask{Name: "test.echo", Args: json.RawMessage(`{"pad": "some words to make the page larger than a kilobyte"}`)})
		}
		get := func(path, acceptEncoding string) (*http.Response, []byte) {
			t.Helper()
			req, err := http.NewRequestWithContext(e.ctx, "GET", e.http.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if acceptEncoding != "" {
				req.Header.Set("Accept-Encoding", acceptEncoding) // set by hand: the transport then leaves the body as sent
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return resp, raw
		}
		plainResp, plain := get("/api/v1/tasks?limit=20", "identity")
		if enc := plainResp.Header.Get("Content-Encoding"); enc != "" || len(plain) < 1024 {
			t.Fatalf("without gzip: Content-Encoding %q, %d bytes", enc, len(plain))
		}
		zResp, zipped := get("/api/v1/tasks?limit=20", "gzip")
		if enc := zResp.Header.Get("Content-Encoding"); enc != "gzip" || len(zipped) >= len(plain) {
			t.Fatalf("with gzip: Content-Encoding %q, %d bytes for %d plain", enc, len(zipped), len(plain))
		}
		if vary := zResp.Header.Get("Vary"); vary != "Accept-Encoding" {
			t.Errorf("Vary %q", vary)
		}
		zr, err := gzip.NewReader(bytes.NewReader(zipped))
		if err != nil {
			t.Fatal(err)
		}
		unzipped, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		var a, b apiv1.Page[apiv1.Task]
		if json.Unmarshal(plain, &a) != nil || json.Unmarshal(unzipped, &b) != nil || len(a.Results) != 20 || len(b.Results) != 20 || a.Results[0].ID != b.Results[0].ID {
			t.Fatalf("the compressed page differs: %d and %d results", len(a.Results), len(b.Results))
		}
		if resp, _ := get("/api/v1/tasks?limit=1", "gzip"); resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("a small page was compressed")
		}
	})
}
