package main

import "errors"

// exitError is an error that asks for a given exit status; main exits 1 on
// any other error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withExitCode makes err exit with code.
func withExitCode(code int, err error) error { return &exitError{code: code, err: err} }

// exitCode returns the exit status err asks for: an exitError's code, or 1.
func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) && e.code != 0 {
		return e.code
	}
	return 1
}
