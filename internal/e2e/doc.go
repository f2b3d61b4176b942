// Package e2e holds end-to-end tests that run the stint binary as real
// processes against a real PostgreSQL database and check, from what the
// database recorded, the invariants Stint promises: conflicting tasks never
// overlap, no task overtakes an earlier conflicting one, every task ends.
package e2e
