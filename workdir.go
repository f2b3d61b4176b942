package stint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ensurePrivateDir makes sure that dir is a directory only this process's
// user may enter, before anything is written under it: it creates dir
// (mode 0700, its parents too) when absent, and refuses it when it is a
// symbolic link, not a directory, owned by another user, or open to group
// or others. Working directories live under a predictable path in $TMPDIR
// by default, where any local user could otherwise plant a link (and have
// a worker write, or remove, where it points) or a directory of their own
// (and read what tasks write).
func ensurePrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return fmt.Errorf("stint: working directory: %w", err)
		}
		// Mkdir, not MkdirAll: it fails on whatever was planted meanwhile,
		// which Lstat then judges.
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("stint: working directory: %w", err)
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return fmt.Errorf("stint: working directory: %w", err)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("stint: working directory %s is a symbolic link; remove it, or set another directory", dir)
	case !fi.IsDir():
		return fmt.Errorf("stint: working directory %s is not a directory", dir)
	}
	return checkPrivate(dir, fi)
}
