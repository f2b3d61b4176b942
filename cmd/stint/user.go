package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/internal/auth"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
	"github.com/stint-dev/stint/store/sqlite"
)

// userNamePattern is what a user name may hold: it appears in task owners,
// filters and logs, so it stays plain. It is compiled on first use, not at
// start-up: its repetition makes a large program, and every task child
// process (stint.process.*) starts this binary.
var userNamePattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$`)
})

func newUserCommand() *cobra.Command {
	var db string
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage users and their API tokens (on the database)",
		Long: `Manage the users of a Stint server and their API tokens, directly on the
database (--db, as for stint serve; it works while the server runs, also on
SQLite). Tokens are printed once, when made, and stored only as hashes.

Roles: "user" dispatches, sees and cancels its own tasks; "admin" sees and
cancels all tasks and sees workers. With no users at all, the server is open
(on a loopback address only): adding the first user closes it at once.`,
	}
	cmd.PersistentFlags().StringVar(&db, "db", defaultDBValue(defaultSQLite), "database: postgres://user@host/dbname or sqlite:PATH (env STINT_DB)")
	withUsers := func(run func(ctx context.Context, users store.Users, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			users, closeUsers, err := openUsers(cmd.Context(), db)
			if err != nil {
				return err
			}
			defer closeUsers()
			return run(cmd.Context(), users, cmd, args)
		}
	}

	var role string
	add := &cobra.Command{
		Use:     "add NAME",
		Short:   "Add a user and print its first API token",
		Example: "  stint user add alice --role admin",
		Args:    cobra.ExactArgs(1),
		PreRunE: func(_ *cobra.Command, args []string) error {
			if err := checkUserName(args[0]); err != nil {
				return err
			}
			if !store.Role(role).Valid() {
				return fmt.Errorf("--role %q: must be user or admin", role)
			}
			return nil
		},
		RunE: withUsers(func(ctx context.Context, users store.Users, cmd *cobra.Command, args []string) error {
			if err := users.CreateUser(ctx, args[0], store.Role(role)); err != nil {
				if errors.Is(err, store.ErrExists) {
					return fmt.Errorf("user %q already exists; stint user token %s makes it a new token", args[0], args[0])
				}
				return err
			}
			return printNewToken(ctx, users, cmd, args[0])
		}),
	}
	add.Flags().StringVar(&role, "role", string(store.RoleUser), "user or admin")

	token := &cobra.Command{
		Use:   "token NAME",
		Short: "Make a new API token for a user and print it",
		Long:  "Make a new API token for a user and print it, once. The user's other tokens stay valid until revoked.",
		Args:  cobra.ExactArgs(1),
		RunE: withUsers(func(ctx context.Context, users store.Users, cmd *cobra.Command, args []string) error {
			return printNewToken(ctx, users, cmd, args[0])
		}),
	}

	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "List users, their roles and their tokens' ids",
		Args:  cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q: must be table or json", output)
			}
			return nil
		},
		RunE: withUsers(func(ctx context.Context, users store.Users, cmd *cobra.Command, _ []string) error {
			all, err := users.Users(ctx)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), userDocuments(all))
			}
			tw := newTable(cmd.OutOrStdout(), "NAME", "ROLE", "CREATED", "TOKENS")
			for _, u := range all {
				ids := make([]string, len(u.Tokens))
				for i, t := range u.Tokens {
					ids[i] = t.ID
				}
				row(tw, u.Name, string(u.Role), u.CreatedAt.Local().Format(time.DateTime), strings.Join(ids, ","))
			}
			return tw.Flush()
		}),
	}
	list.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")

	revoke := &cobra.Command{
		Use:     "revoke TOKEN_ID...",
		Short:   "Revoke API tokens by id (the id is the part after stint_, as stint user list shows it)",
		Example: "  stint user revoke 3f9a0c1b2d4e",
		Args:    cobra.MinimumNArgs(1),
		RunE: withUsers(func(ctx context.Context, users store.Users, cmd *cobra.Command, args []string) error {
			for _, arg := range args {
				id := tokenID(arg)
				if err := users.RevokeToken(ctx, id); err != nil {
					if errors.Is(err, store.ErrNotFound) {
						return fmt.Errorf("token %q: no such token", id)
					}
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", id)
			}
			return nil
		}),
	}

	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user and revoke all its tokens (its tasks keep their owner)",
		Args:  cobra.ExactArgs(1),
		RunE: withUsers(func(ctx context.Context, users store.Users, cmd *cobra.Command, args []string) error {
			if err := users.DeleteUser(ctx, args[0]); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("user %q: no such user", args[0])
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", args[0])
			return nil
		}),
	}
	cmd.AddCommand(add, token, list, revoke, remove)
	return cmd
}

// checkUserName refuses names that would be awkward in owners and logs.
func checkUserName(name string) error {
	if !userNamePattern().MatchString(name) {
		return fmt.Errorf("user name %q: use 1 to 100 letters, digits and . _ @ -, starting with a letter or digit", name)
	}
	return nil
}

// tokenID accepts a token id, or a whole token (whose id it extracts, so a
// leaked token can be revoked by pasting it).
func tokenID(arg string) string {
	if id, _, err := auth.Parse(arg); err == nil {
		return id
	}
	return arg
}

// printNewToken makes a token for user, prints it alone on stdout (for
// scripts) and a reminder on stderr.
func printNewToken(ctx context.Context, users store.Users, cmd *cobra.Command, user string) error {
	t, err := auth.New()
	if err != nil {
		return err
	}
	if err := users.AddToken(ctx, store.NewToken{ID: t.ID, User: user, Hash: t.Hash}); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("user %q: no such user", user)
		}
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), t.Secret)
	fmt.Fprintf(cmd.ErrOrStderr(), "A new token of %s (id %s). It is shown only now: pass it as --token or STINT_TOKEN.\n", user, t.ID)
	return nil
}

// userDocument is a user in `stint user list -o json`.
type userDocument struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	Tokens    []string  `json:"tokens"`
}

func userDocuments(users []store.User) []userDocument {
	docs := make([]userDocument, len(users))
	for i, u := range users {
		docs[i] = userDocument{Name: u.Name, Role: string(u.Role), CreatedAt: u.CreatedAt.UTC(), Tokens: []string{}}
		for _, t := range u.Tokens {
			docs[i].Tokens = append(docs[i].Tokens, t.ID)
		}
	}
	return docs
}

// openUsers opens the users of the database a --db value names. On SQLite
// it works beside a running stint serve (see sqlite.OpenUsers).
func openUsers(ctx context.Context, value string) (store.Users, func(), error) {
	target, err := parseDB(value)
	if err != nil {
		return nil, nil, err
	}
	if target.engine == engineSQLite {
		u, err := sqlite.OpenUsers(ctx, target.dsn)
		if err != nil {
			return nil, nil, err
		}
		return u, u.Close, nil
	}
	st, err := postgres.Open(ctx, target.dsn)
	if err != nil {
		return nil, nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, st.Close, nil
}
