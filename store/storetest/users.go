package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/auth"
	"github.com/stint-dev/stint/store"
)

// UsersOpener returns a fresh store.Users, with no users, for one test. It
// closes what it opens when the test ends (t.Cleanup).
type UsersOpener func(t *testing.T) store.Users

// RunUsers runs the users and tokens part of the suite. Run runs it on the
// stores it opens; an engine with a separate way to manage users (the
// SQLite engine's UserStore) runs it on that too.
func RunUsers(t *testing.T, open UsersOpener) {
	t.Run("Lifecycle", func(t *testing.T) { testUsersLifecycle(t, open) })
	t.Run("Errors", func(t *testing.T) { testUsersErrors(t, open) })
	t.Run("TokenReturnsTheStoredBytes", func(t *testing.T) { testTokenBytes(t, open) })
	t.Run("ConcurrentCreateUser", func(t *testing.T) { testConcurrentCreateUser(t, open) })
	t.Run("AddTokenRacesDeleteUser", func(t *testing.T) { testAddTokenRacesDelete(t, open) })
}

// testUsers runs RunUsers on the stores of open, and what needs tasks too.
func testUsers(t *testing.T, open Opener) {
	RunUsers(t, func(t *testing.T) store.Users {
		st, _ := openStore(t, open)
		return st
	})
	t.Run("DeleteUserKeepsTasks", func(t *testing.T) { testDeleteUserKeepsTasks(t, open) })
}

func openUsers(t *testing.T, open UsersOpener) (store.Users, context.Context) {
	return open(t), ctxFor(t)
}

// newToken makes a real API token for user.
func newToken(t *testing.T, user string) (auth.Token, store.NewToken) {
	t.Helper()
	tok, err := auth.New()
	if err != nil {
		t.Fatal(err)
	}
	return tok, store.NewToken{ID: tok.ID, User: user, Hash: tok.Hash}
}

// userSummary is what the tests compare of a listed user.
type userSummary struct {
	Name   string
	Role   store.Role
	Tokens []string // ids, in the listed order
}

func summarize(t *testing.T, ctx context.Context, u store.Users) []userSummary {
	t.Helper()
	list, err := u.Users(ctx)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	out := []userSummary{}
	for _, usr := range list {
		s := userSummary{Name: usr.Name, Role: usr.Role, Tokens: []string{}}
		for _, tk := range usr.Tokens {
			if tk.User != usr.Name {
				t.Errorf("token %s of %s lists user %q", tk.ID, usr.Name, tk.User)
			}
			s.Tokens = append(s.Tokens, tk.ID)
		}
		out = append(out, s)
	}
	return out
}

func wantUsers(t *testing.T, ctx context.Context, u store.Users, want []userSummary) {
	t.Helper()
	got := summarize(t, ctx, u)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Users:\n got %v\nwant %v", got, want)
	}
}

// recent checks that a timestamp the store set is now, give or take a
// minute (the database's clock may not be the test's).
func recent(t *testing.T, what string, at time.Time) {
	t.Helper()
	if at.IsZero() || time.Since(at).Abs() > time.Minute {
		t.Errorf("%s: created at %v, not now", what, at)
	}
}

func testUsersLifecycle(t *testing.T, open UsersOpener) {
	u, ctx := openUsers(t, open)
	if has, err := u.HasUsers(ctx); err != nil || has {
		t.Fatalf("HasUsers on a fresh store: %v %v, want false", has, err)
	}
	wantUsers(t, ctx, u, []userSummary{})

	// Names are listed in the order of their bytes, on every engine.
	roles := map[string]store.Role{"bob": store.RoleUser, "alice": store.RoleAdmin, "Zed": store.RoleUser,
		"émile": store.RoleAdmin, "al": store.RoleUser}
	for _, name := range []string{"bob", "alice", "Zed", "émile", "al"} {
		if err := u.CreateUser(ctx, name, roles[name]); err != nil {
			t.Fatalf("CreateUser %s: %v", name, err)
		}
		if has, err := u.HasUsers(ctx); err != nil || !has {
			t.Fatalf("HasUsers after CreateUser: %v %v, want true", has, err)
		}
	}
	names := []string{"bob", "alice", "Zed", "émile", "al"}
	sort.Strings(names)
	var want []userSummary
	for _, name := range names {
		want = append(want, userSummary{Name: name, Role: roles[name], Tokens: []string{}})
	}
	wantUsers(t, ctx, u, want)

	// Tokens, listed oldest first.
	tokens := map[string]auth.Token{}
	var aliceIDs []string
	for i := range 4 {
		tok, nt := newToken(t, "alice")
		if err := u.AddToken(ctx, nt); err != nil {
			t.Fatalf("AddToken %d: %v", i, err)
		}
		tokens[tok.ID] = tok
		aliceIDs = append(aliceIDs, tok.ID)
	}
	bobTok, nt := newToken(t, "bob")
	if err := u.AddToken(ctx, nt); err != nil {
		t.Fatal(err)
	}
	tokens[bobTok.ID] = bobTok
	for i := range want {
		switch want[i].Name {
		case "alice":
			want[i].Tokens = slices.Clone(aliceIDs)
		case "bob":
			want[i].Tokens = []string{bobTok.ID}
		}
	}
	wantUsers(t, ctx, u, want)
	list, err := u.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]time.Time{}
	for _, usr := range list {
		recent(t, "user "+usr.Name, usr.CreatedAt)
		created[usr.Name] = usr.CreatedAt
		for i, tk := range usr.Tokens {
			recent(t, "token "+tk.ID, tk.CreatedAt)
			if i > 0 && tk.CreatedAt.Before(usr.Tokens[i-1].CreatedAt) {
				t.Errorf("%s's tokens are not oldest first: %v", usr.Name, usr.Tokens)
			}
		}
	}

	// Token: the stored hash and the user, without its tokens.
	for id, tok := range tokens {
		hash, usr, err := u.Token(ctx, id)
		if err != nil {
			t.Fatalf("Token %s: %v", id, err)
		}
		if !bytes.Equal(hash, tok.Hash) {
			t.Errorf("Token %s: hash %x, want %x", id, hash, tok.Hash)
		}
		gotID, secret, err := auth.Parse(tok.Secret)
		if err != nil || gotID != id || !auth.Matches(secret, hash) {
			t.Errorf("token %s does not check against its stored hash (%q %v)", id, gotID, err)
		}
		owner := "alice"
		if id == bobTok.ID {
			owner = "bob"
		}
		if usr == nil || usr.Name != owner || usr.Role != roles[owner] || usr.Tokens != nil ||
			!usr.CreatedAt.Equal(created[owner]) {
			t.Errorf("Token %s: user %+v, want %s (%s, created %v) without tokens", id, usr, owner, roles[owner], created[owner])
		}
	}

	// A revoked token is refused at once; the others stay, in order.
	revoked := aliceIDs[1]
	if err := u.RevokeToken(ctx, revoked); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if _, _, err := u.Token(ctx, revoked); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Token of a revoked token: %v, want ErrNotFound", err)
	}
	if err := u.RevokeToken(ctx, revoked); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RevokeToken again: %v, want ErrNotFound", err)
	}
	aliceIDs = slices.Delete(aliceIDs, 1, 2)
	for i := range want {
		if want[i].Name == "alice" {
			want[i].Tokens = slices.Clone(aliceIDs)
		}
	}
	wantUsers(t, ctx, u, want)

	// A deleted user's tokens go with it; the others' stay.
	if err := u.DeleteUser(ctx, "alice"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	for _, id := range aliceIDs {
		if _, _, err := u.Token(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token %s of a deleted user: %v, want ErrNotFound", id, err)
		}
		if err := u.RevokeToken(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RevokeToken %s of a deleted user: %v, want ErrNotFound", id, err)
		}
	}
	if _, usr, err := u.Token(ctx, bobTok.ID); err != nil || usr.Name != "bob" {
		t.Fatalf("bob's token after alice's removal: %+v %v", usr, err)
	}
	if err := u.DeleteUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteUser again: %v, want ErrNotFound", err)
	}
	want = slices.DeleteFunc(want, func(s userSummary) bool { return s.Name == "alice" })
	wantUsers(t, ctx, u, want)

	// A new user of the same name has none of the old one's tokens.
	if err := u.CreateUser(ctx, "alice", store.RoleUser); err != nil {
		t.Fatalf("CreateUser after DeleteUser: %v", err)
	}
	for _, id := range aliceIDs {
		if _, _, err := u.Token(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token %s of the deleted alice, after a new alice: %v, want ErrNotFound", id, err)
		}
	}
	want = append(want, userSummary{Name: "alice", Role: store.RoleUser, Tokens: []string{}})
	sort.Slice(want, func(i, j int) bool { return want[i].Name < want[j].Name })
	wantUsers(t, ctx, u, want)

	// With every user gone, there are none.
	for _, s := range want {
		if err := u.DeleteUser(ctx, s.Name); err != nil {
			t.Fatalf("DeleteUser %s: %v", s.Name, err)
		}
	}
	if has, err := u.HasUsers(ctx); err != nil || has {
		t.Fatalf("HasUsers with every user removed: %v %v, want false", has, err)
	}
	if _, _, err := u.Token(ctx, bobTok.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Token of a removed user: %v, want ErrNotFound", err)
	}
	wantUsers(t, ctx, u, []userSummary{})
}

// errSome stands for any error but the sentinels the tests tell apart.
var errSome = errors.New("some error")

func testUsersErrors(t *testing.T, open UsersOpener) {
	u, ctx := openUsers(t, open)
	if err := u.CreateUser(ctx, "alice", store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	tok, nt := newToken(t, "alice")
	if err := u.AddToken(ctx, nt); err != nil {
		t.Fatal(err)
	}
	_, forBob := newToken(t, "bob")
	_, forAliceCased := newToken(t, "Alice")
	taken := store.NewToken{ID: tok.ID, User: "alice", Hash: bytes.Repeat([]byte{7}, 32)}
	cases := []struct {
		name string
		do   func() error
		want error // nil, a sentinel, or errSome
	}{
		{"CreateUser of a taken name", func() error { return u.CreateUser(ctx, "alice", store.RoleAdmin) }, store.ErrExists},
		{"CreateUser of a taken name, another role", func() error { return u.CreateUser(ctx, "alice", store.RoleUser) }, store.ErrExists},
		{"CreateUser with an unknown role", func() error { return u.CreateUser(ctx, "mallory", "root") }, errSome},
		{"CreateUser with no role", func() error { return u.CreateUser(ctx, "mallory", "") }, errSome},
		{"DeleteUser of an unknown user", func() error { return u.DeleteUser(ctx, "bob") }, store.ErrNotFound},
		{"DeleteUser is case-sensitive", func() error { return u.DeleteUser(ctx, "ALICE") }, store.ErrNotFound},
		{"AddToken for an unknown user", func() error { return u.AddToken(ctx, forBob) }, store.ErrNotFound},
		{"AddToken is case-sensitive", func() error { return u.AddToken(ctx, forAliceCased) }, store.ErrNotFound},
		{"AddToken of a taken id", func() error { return u.AddToken(ctx, taken) }, errSome},
		{"RevokeToken of an unknown id", func() error { return u.RevokeToken(ctx, forBob.ID) }, store.ErrNotFound},
		{"Token of an unknown id", func() error { _, _, err := u.Token(ctx, forBob.ID); return err }, store.ErrNotFound},
		{"Token of an empty id", func() error { _, _, err := u.Token(ctx, ""); return err }, store.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			switch {
			case tc.want == errSome:
				if err == nil || errors.Is(err, store.ErrNotFound) {
					t.Fatalf("got %v, want an error", err)
				}
			case !errors.Is(err, tc.want):
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// The refused calls changed nothing.
	wantUsers(t, ctx, u, []userSummary{{Name: "alice", Role: store.RoleAdmin, Tokens: []string{tok.ID}}})
	hash, usr, err := u.Token(ctx, tok.ID)
	if err != nil || !bytes.Equal(hash, tok.Hash) || usr.Name != "alice" {
		t.Fatalf("Token after the refused calls: %x %+v %v", hash, usr, err)
	}
}

// testTokenBytes stores hashes of every byte value, zeros included, and
// gets them back exactly.
func testTokenBytes(t *testing.T, open UsersOpener) {
	u, ctx := openUsers(t, open)
	if err := u.CreateUser(ctx, "bytes", store.RoleUser); err != nil {
		t.Fatal(err)
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(255 - i)
	}
	hashes := [][]byte{{0}, {0, 0, 0}, all, append([]byte{0xff, 0}, all...)}
	for i, h := range hashes {
		id := fmt.Sprintf("%012x", i)
		if err := u.AddToken(ctx, store.NewToken{ID: id, User: "bytes", Hash: h}); err != nil {
			t.Fatalf("AddToken %d: %v", i, err)
		}
	}
	for i, h := range hashes {
		got, _, err := u.Token(ctx, fmt.Sprintf("%012x", i))
		if err != nil || !bytes.Equal(got, h) {
			t.Errorf("hash %d: got %x %v, want %x", i, got, err, h)
		}
	}
}

func testConcurrentCreateUser(t *testing.T, open UsersOpener) {
	u, ctx := openUsers(t, open)
	const rounds, racers = 5, 8
	for round := range rounds {
		name := fmt.Sprintf("racer-%d", round)
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				role := store.RoleUser
				if i%2 == 1 {
					role = store.RoleAdmin
				}
				errs[i] = u.CreateUser(ctx, name, role)
			})
		}
		close(start)
		wg.Wait()
		created := 0
		for _, err := range errs {
			switch {
			case err == nil:
				created++
			case !errors.Is(err, store.ErrExists):
				t.Fatalf("round %d: CreateUser: %v, want nil or ErrExists", round, err)
			}
		}
		if created != 1 {
			t.Fatalf("round %d: %d of %d concurrent CreateUser of one name succeeded, want 1 (%v)", round, created, racers, errs)
		}
	}
	list := summarize(t, ctx, u)
	if len(list) != rounds {
		t.Fatalf("Users after the races: %v", list)
	}
}

// testAddTokenRacesDelete adds tokens to a user while it is deleted: each
// token is refused, or added and deleted with the user. None survives it.
func testAddTokenRacesDelete(t *testing.T, open UsersOpener) {
	u, ctx := openUsers(t, open)
	for round := range 5 {
		if err := u.CreateUser(ctx, "doomed", store.RoleUser); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		const adders = 8
		ids := make([]string, adders)
		errs := make([]error, adders)
		var delErr error
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range adders {
			_, nt := newToken(t, "doomed")
			ids[i] = nt.ID
			wg.Go(func() {
				<-start
				errs[i] = u.AddToken(ctx, nt)
			})
		}
		wg.Go(func() {
			<-start
			delErr = u.DeleteUser(ctx, "doomed")
		})
		close(start)
		wg.Wait()
		if delErr != nil {
			t.Fatalf("round %d: DeleteUser: %v", round, delErr)
		}
		for i, err := range errs {
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("round %d: AddToken: %v, want nil or ErrNotFound", round, err)
			}
			if _, _, err := u.Token(ctx, ids[i]); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("round %d: a token of the deleted user: %v, want ErrNotFound", round, err)
			}
		}
		if has, err := u.HasUsers(ctx); err != nil || has {
			t.Fatalf("round %d: HasUsers: %v %v", round, has, err)
		}
	}
	// A new user of the name inherits no token.
	if err := u.CreateUser(ctx, "doomed", store.RoleUser); err != nil {
		t.Fatal(err)
	}
	wantUsers(t, ctx, u, []userSummary{{Name: "doomed", Role: store.RoleUser, Tokens: []string{}}})
}

// testDeleteUserKeepsTasks removes a user that owns tasks: the tasks stay,
// with their owner.
func testDeleteUserKeepsTasks(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	if err := st.CreateUser(ctx, "carol", store.RoleUser); err != nil {
		t.Fatal(err)
	}
	nt := newTask("test.owned", nil, nil)
	nt.Owner = "carol"
	if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteUser(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	task, err := st.Task(ctx, nt.ID)
	if err != nil || task.Owner != "carol" {
		t.Fatalf("task of a deleted user: %+v %v", task, err)
	}
	tasks, n, err := st.ListTasks(ctx, store.TaskFilter{Owner: "carol"})
	if err != nil || totalOf(n) != 1 || len(tasks) != 1 || tasks[0].ID != nt.ID {
		t.Fatalf("tasks of a deleted user: %d %v %v", totalOf(n), tasks, err)
	}
}
