package api_test

import (
	"testing"
	"time"

	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/enginetest"
)

// TestStatusAnswersFromRecentFigures: GET /status answers from figures at
// most StatusCacheTTL old (a dispatch shows up once they are read again),
// and, with a negative TTL, from the store on every request.
func TestStatusAnswersFromRecentFigures(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		for _, ttl := range []time.Duration{-1, api.DefaultStatusCacheTTL} {
			e := newEnv(t, eng, api.Config{AllowOpen: true, StatusCacheTTL: ttl})
			var before apiv1.Status
			e.must("GET", "/api/v1/status", nil, 200, &before)
			read := time.Now()
			e.dispatch(apiv1.DispatchTask{Name: "stint.noop", ExclusiveResources: []string{"status:" + ttl.String()}})
			var after apiv1.Status
			e.must("GET", "/api/v1/status", nil, 200, &after)
			switch {
			case ttl < 0 && after.Tasks.Waiting != before.Tasks.Waiting+1:
				t.Errorf("TTL %v: waiting %d after a dispatch, was %d", ttl, after.Tasks.Waiting, before.Tasks.Waiting)
			case ttl > 0 && time.Since(read) < ttl/2 && after.Tasks.Waiting != before.Tasks.Waiting:
				t.Errorf("TTL %v: waiting %d within the TTL, was %d: the figures were read again", ttl, after.Tasks.Waiting, before.Tasks.Waiting)
			}
			if ttl < 0 {
				continue
			}
			for after.Tasks.Waiting != before.Tasks.Waiting+1 {
				if time.Since(read) > ttl+5*time.Second {
					t.Fatalf("TTL %v: /status still says %d waiting after %v", ttl, after.Tasks.Waiting, time.Since(read))
				}
				time.Sleep(50 * time.Millisecond)
				e.must("GET", "/api/v1/status", nil, 200, &after)
			}
			if since := time.Since(read); since < ttl/2 {
				t.Errorf("TTL %v: the figures were read again after %v", ttl, since)
			}
		}
	})
}
