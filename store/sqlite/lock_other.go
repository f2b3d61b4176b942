//go:build !unix && !windows

package sqlite

import (
	"os"
	"sync"
)

// held is the set of lock files this process holds. On this platform the
// lock is not seen by other processes: it only stops a second Open of the
// same path in this process. Running two Stint processes on one file here
// is the operator's mistake to avoid.
//
// (The SQLite driver does not support such platforms today; this keeps the
// package compiling if it comes to.)
var held = struct {
	sync.Mutex
	paths map[string]bool
}{paths: map[string]bool{}}

// acquireLock records path as held by this process.
func acquireLock(path string) (*os.File, error) {
	held.Lock()
	defer held.Unlock()
	if held.paths[path] {
		return nil, errLocked
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	held.paths[path] = true
	return f, nil
}

// releaseLock forgets the lock and closes the file.
func releaseLock(f *os.File) error {
	held.Lock()
	delete(held.paths, f.Name())
	held.Unlock()
	return f.Close()
}
