//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package sqlite

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// acquireLock takes an exclusive flock on the file at path, creating it if
// absent. The lock belongs to the open file description: a second open of
// the file, in this process or another, cannot take it, and the kernel
// releases it when the process ends, however it ends. The descriptor is
// close-on-exec, so child processes do not inherit it.
func acquireLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return f, nil
}

// releaseLock releases the lock and closes the file.
func releaseLock(f *os.File) error {
	// Closing the last descriptor releases the lock; unlocking first makes
	// it explicit.
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return f.Close()
}
