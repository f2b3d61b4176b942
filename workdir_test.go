package stint

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
)

// TestWorkDirRefusesPlantedRoot: the working directories of a worker (and
// of the immediate runs recorded under its name) live under a predictable
// path in $TMPDIR, where another local user may plant a symbolic link or a
// directory of their own first. A run then gets no working directory (its
// task fails saying why) rather than writing where the link points or into
// a directory others can read.
func TestWorkDirRefusesPlantedRoot(t *testing.T) {
	st := enginetest.SQLite.Open(t)
	reg := NewRegistry()
	Register(reg, "test.write", func(_ context.Context, run *Run, _ struct{}) (string, error) {
		dir, err := run.WorkDir()
		if err != nil {
			return "", err
		}
		return dir, os.WriteFile(filepath.Join(dir, "secret"), []byte("args"), 0o600)
	})
	client := NewClient(st, reg)
	ctx := context.Background()
	for _, plant := range []string{"symlink", "open directory"} {
		t.Run(plant, func(t *testing.T) {
			name := "planted-" + uuid.NewString() + "@test"
			root := defaultWorkDir(name)
			target := t.TempDir()
			t.Cleanup(func() { os.RemoveAll(root) })
			switch plant {
			case "symlink":
				if err := os.Symlink(target, root); err != nil {
					t.Fatal(err)
				}
			case "open directory":
				if err := os.Mkdir(root, 0o777); err != nil {
					t.Fatal(err)
				}
				os.Chmod(root, 0o777) //nolint:errcheck // past the umask
			}
			task, err := client.DispatchImmediate(ctx, DispatchRequest{Name: "test.write"}, name, true)
			if err != nil {
				t.Fatal(err)
			}
			if task.State != store.StateFailed || task.Error == nil {
				t.Errorf("the task is %s (error %v), want failed", task.State, task.Error)
			}
			if entries, _ := os.ReadDir(target); len(entries) > 0 {
				t.Errorf("the run wrote through the planted symlink: %v", entries)
			}
			if entries, _ := os.ReadDir(root); plant == "open directory" && len(entries) > 0 {
				t.Errorf("the run wrote into a directory others may read: %v", entries)
			}
		})
	}
	t.Run("private", func(t *testing.T) {
		name := "private-" + uuid.NewString() + "@test"
		t.Cleanup(func() { os.RemoveAll(defaultWorkDir(name)) })
		task, err := client.DispatchImmediate(ctx, DispatchRequest{Name: "test.write"}, name, true)
		if err != nil || task.State != store.StateCompleted {
			t.Fatalf("task %+v, %v", task, err)
		}
		fi, err := os.Lstat(defaultWorkDir(name))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Fatalf("the working directory: %v, %v", fi.Mode(), err)
		}
	})
}
