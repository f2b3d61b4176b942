//go:build unix

package stint

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkPrivate refuses a directory owned by another user or open to group
// or others.
func checkPrivate(dir string, fi fs.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("stint: working directory %s belongs to user id %d, not to this process's (%d); remove it, or set another directory", dir, st.Uid, os.Geteuid())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("stint: working directory %s has mode %v: group and others may use it; chmod 700 it, or set another directory", dir, perm)
	}
	return nil
}
