//go:build unix

package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFilesArePrivate: the database file, its WAL and shared-memory files
// and the lock file are readable by their owner only, whatever the umask
// lets through: they hold every task's args and results, and users' token
// hashes.
func TestFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "stint.db")
	st, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateUser(context.Background(), "alice", "admin"); err != nil { // something in the WAL
		t.Fatal(err)
	}
	// So is a file that stint user add creates before any server ran.
	users := filepath.Join(filepath.Dir(path), "users.db")
	u, err := OpenUsers(context.Background(), users)
	if err != nil {
		t.Fatal(err)
	}
	u.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + ".lock", users} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s: mode %v, want no permission for group or others", filepath.Base(p), perm)
		}
	}
}
