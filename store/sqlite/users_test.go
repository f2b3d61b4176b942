package sqlite_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stint-dev/stint/internal/auth"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/sqlite"
	"github.com/stint-dev/stint/store/storetest"
)

func openUsers(t *testing.T, path string) *sqlite.UserStore {
	t.Helper()
	u, err := sqlite.OpenUsers(ctxFor(t), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	return u
}

// TestUserStoreConformance runs the users suite on a UserStore alone, and
// on a UserStore beside a Store that holds the file.
func TestUserStoreConformance(t *testing.T) {
	t.Run("Alone", func(t *testing.T) {
		storetest.RunUsers(t, func(t *testing.T) store.Users {
			return openUsers(t, filepath.Join(t.TempDir(), "stint.db"))
		})
	})
	t.Run("BesideAServer", func(t *testing.T) {
		storetest.RunUsers(t, func(t *testing.T) store.Users {
			path := filepath.Join(t.TempDir(), "stint.db")
			open(t, path)
			return openUsers(t, path)
		})
	})
}

// TestUserStoreBesideServer manages users through a UserStore while a
// Store holds the file: each sees the other's changes at its next call.
func TestUserStoreBesideServer(t *testing.T) {
	ctx := ctxFor(t)
	path := filepath.Join(t.TempDir(), "stint.db")
	st := open(t, path)
	u := openUsers(t, path)
	// The UserStore did not take the server's lock.
	if other, err := sqlite.Open(ctx, path); !errors.Is(err, sqlite.ErrInUse) {
		if err == nil {
			other.Close()
		}
		t.Fatalf("Open beside a server and a UserStore: %v, want ErrInUse", err)
	}
	if has, err := st.HasUsers(ctx); err != nil || has {
		t.Fatalf("HasUsers: %v %v", has, err)
	}

	// Added through the UserStore, seen by the server at once.
	if err := u.CreateUser(ctx, "admin", store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if has, err := st.HasUsers(ctx); err != nil || !has {
		t.Fatalf("server's HasUsers after user add: %v %v", has, err)
	}
	var toks []auth.Token
	for range 3 {
		tok, err := auth.New()
		if err != nil {
			t.Fatal(err)
		}
		if err := u.AddToken(ctx, store.NewToken{ID: tok.ID, User: "admin", Hash: tok.Hash}); err != nil {
			t.Fatal(err)
		}
		hash, usr, err := st.Token(ctx, tok.ID)
		if err != nil || !bytes.Equal(hash, tok.Hash) || usr.Name != "admin" || usr.Role != store.RoleAdmin {
			t.Fatalf("server's Token of a token the UserStore added: %x %+v %v", hash, usr, err)
		}
		toks = append(toks, tok)
	}

	// Revoked through either, refused by the other on its next call.
	if err := u.RevokeToken(ctx, toks[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Token(ctx, toks[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("server's Token after the UserStore revoked it: %v, want ErrNotFound", err)
	}
	if err := st.RevokeToken(ctx, toks[1].ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := u.Token(ctx, toks[1].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UserStore's Token after the server revoked it: %v, want ErrNotFound", err)
	}

	// Users made by the server are the UserStore's to list and remove.
	if err := st.CreateUser(ctx, "dev", store.RoleUser); err != nil {
		t.Fatal(err)
	}
	if err := u.CreateUser(ctx, "dev", store.RoleUser); !errors.Is(err, store.ErrExists) {
		t.Fatalf("UserStore's CreateUser of the server's user: %v, want ErrExists", err)
	}
	list, err := u.Users(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "admin" || len(list[0].Tokens) != 1 ||
		list[0].Tokens[0].ID != toks[2].ID || list[1].Name != "dev" {
		t.Fatalf("UserStore's Users: %+v %v", list, err)
	}
	if err := u.DeleteUser(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Token(ctx, toks[2].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("server's Token of a removed user's token: %v, want ErrNotFound", err)
	}

	// The server schedules as before.
	nt := newTask("test.a", []string{"r"}, nil)
	if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
		t.Fatal(err)
	}
	runs, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.a"}, Limit: 1})
	if err != nil || len(runs) != 1 {
		t.Fatalf("claim: %v %v", runs, err)
	}
	if _, err := st.Finish(ctx, []store.Outcome{{ID: nt.ID, Attempt: runs[0].Attempt, State: store.StateCompleted}}); err != nil {
		t.Fatal(err)
	}
	if res, err := st.Sweep(ctx); err != nil || res.Total() != 0 {
		t.Fatalf("sweep: %+v %v", res, err)
	}

	// After the server stops, the UserStore goes on, and the server opens
	// the file again beside it.
	st.Close()
	if err := u.CreateUser(ctx, "late", store.RoleUser); err != nil {
		t.Fatalf("UserStore after the server stopped: %v", err)
	}
	st = open(t, path)
	if _, usr, err := st.Token(ctx, toks[2].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Token after reopening: %+v %v", usr, err)
	}
	if list, err := st.Users(ctx); err != nil || len(list) != 2 || list[1].Name != "late" {
		t.Fatalf("Users after reopening: %+v %v", list, err)
	}
}

// TestOpenUsersNewFile opens a UserStore on a path where nothing is: it
// creates the file and migrates it, and lets go of the lock, so that a
// server may start on the file while the UserStore is open.
func TestOpenUsersNewFile(t *testing.T) {
	ctx := ctxFor(t)
	path := filepath.Join(t.TempDir(), "new.db")
	u := openUsers(t, path)
	if u.Path() != path {
		t.Errorf("Path() = %q, want %q", u.Path(), path)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("OpenUsers did not create the file: %v", err)
	}
	if err := u.CreateUser(ctx, "first", store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	tok, err := auth.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := u.AddToken(ctx, store.NewToken{ID: tok.ID, User: "first", Hash: tok.Hash}); err != nil {
		t.Fatal(err)
	}
	st := open(t, path)
	if v, err := st.SchemaVersion(ctx); err != nil || v != 6 {
		t.Fatalf("SchemaVersion of a file OpenUsers made: %d %v", v, err)
	}
	if got := st.Recovered(); got != (sqlite.RecoveryResult{}) {
		t.Fatalf("Recovered() = %+v", got)
	}
	if hash, usr, err := st.Token(ctx, tok.ID); err != nil || !bytes.Equal(hash, tok.Hash) || usr.Name != "first" {
		t.Fatalf("server's Token: %x %+v %v", hash, usr, err)
	}
	// And the UserStore opened first still writes beside the server.
	if err := u.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Token(ctx, tok.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("server's Token after revoke: %v", err)
	}
	u.Close()
	u.Close() // a second Close does nothing
	if err := u.CreateUser(ctx, "closed", store.RoleUser); err == nil {
		t.Fatal("CreateUser on a closed UserStore succeeded")
	}
}

// TestUserStoreWritesBesideBusyServer writes users through a UserStore
// while the server writes tasks as fast as it can: SQLite's write lock
// passes between them (busy_timeout) and no write fails.
func TestUserStoreWritesBesideBusyServer(t *testing.T) {
	ctx := ctxFor(t)
	path := filepath.Join(t.TempDir(), "stint.db")
	st := open(t, path)
	u := openUsers(t, path)
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	wg.Go(func() {
		for i := range n {
			nt := newTask("test.busy", []string{fmt.Sprint("r", i%3)}, nil)
			if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
				errs <- fmt.Errorf("dispatch: %w", err)
				return
			}
			runs, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.busy"}, Limit: 10})
			if err != nil {
				errs <- fmt.Errorf("claim: %w", err)
				return
			}
			for _, r := range runs {
				if _, err := st.Finish(ctx, []store.Outcome{{ID: r.ID, Attempt: r.Attempt, State: store.StateCompleted}}); err != nil {
					errs <- fmt.Errorf("finish: %w", err)
					return
				}
			}
		}
	})
	wg.Go(func() {
		for i := range n {
			name := fmt.Sprint("user", i)
			if err := u.CreateUser(ctx, name, store.RoleUser); err != nil {
				errs <- fmt.Errorf("create user: %w", err)
				return
			}
			tok, err := auth.New()
			if err != nil {
				errs <- err
				return
			}
			if err := u.AddToken(ctx, store.NewToken{ID: tok.ID, User: name, Hash: tok.Hash}); err != nil {
				errs <- fmt.Errorf("add token: %w", err)
				return
			}
			if _, _, err := st.Token(ctx, tok.ID); err != nil {
				errs <- fmt.Errorf("server's Token: %w", err)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if list, err := st.Users(ctx); err != nil || len(list) != n {
		t.Fatalf("Users: %d %v", len(list), err)
	}
	if res, err := st.Sweep(ctx); err != nil || res.Total() != 0 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
}
