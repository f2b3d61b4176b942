package api

import "time"

// The tests check that open event streams notice a revoked token within
// a fraction of a second rather than the production interval, and that
// the hub stops listening soon after its last stream closed (every test
// that closes a stream and opens another then goes through a new feed).
func init() {
	authRecheckInterval = 100 * time.Millisecond
	feedLinger = 100 * time.Millisecond
}

// FeedLinger is how long the event hub listens after its last stream.
func FeedLinger() time.Duration { return feedLinger }
