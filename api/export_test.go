package api

import "time"

// The tests check that open event streams notice a revoked token within
// a fraction of a second rather than the production interval.
func init() { authRecheckInterval = 100 * time.Millisecond }
