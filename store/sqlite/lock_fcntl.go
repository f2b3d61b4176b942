//go:build unix && !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package sqlite

import (
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// held is the set of lock files this process holds. POSIX record locks
// belong to the process, so they do not stop a second Open in the same
// process, and closing any descriptor of the file would release them: the
// set stops a second Open here before it opens the file.
var held = struct {
	sync.Mutex
	paths map[string]bool
}{paths: map[string]bool{}}

// acquireLock takes an exclusive POSIX record lock (fcntl F_SETLK) on the
// file at path, creating it if absent: on these systems flock is missing
// or not shared between processes reliably. The kernel releases the lock
// when the process ends.
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
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		f.Close()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return nil, errLocked
		}
		return nil, err
	}
	held.paths[path] = true
	return f, nil
}

// releaseLock releases the lock and closes the file.
func releaseLock(f *os.File) error {
	held.Lock()
	defer held.Unlock()
	delete(held.paths, f.Name())
	return f.Close() // closing the descriptor releases the record lock
}
