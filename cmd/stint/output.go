package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
)

// defaultServer is the server client commands talk to without --server or
// STINT_SERVER.
const defaultServer = "http://127.0.0.1:7710"

// clientFlags are the flags every client command takes.
type clientFlags struct {
	server, token, output string
}

// addClientFlags adds --server, --token and -o/--output to cmd.
func addClientFlags(cmd *cobra.Command) *clientFlags {
	cf := &clientFlags{}
	server := os.Getenv("STINT_SERVER")
	if server == "" {
		server = defaultServer
	}
	f := cmd.Flags()
	f.StringVar(&cf.server, "server", server, "URL of the Stint server (env STINT_SERVER)")
	// The token's default is read at run time, not shown in --help.
	f.StringVar(&cf.token, "token", "", "API token, sent as a bearer token (default $STINT_TOKEN)")
	f.StringVarP(&cf.output, "output", "o", "table", "output format: table or json")
	return cf
}

// check refuses bad values of the common flags.
func (cf *clientFlags) check() error {
	if cf.output != "table" && cf.output != "json" {
		return fmt.Errorf("--output %q: must be table or json", cf.output)
	}
	if _, err := client.New(cf.server); err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	return nil
}

// jsonOut reports whether -o json was asked.
func (cf *clientFlags) jsonOut() bool { return cf.output == "json" }

// client checks the flags and returns a client of the server.
func (cf *clientFlags) client() (*client.Client, error) {
	if err := cf.check(); err != nil {
		return nil, err
	}
	token := cf.token
	if token == "" {
		token = os.Getenv("STINT_TOKEN")
	}
	return client.New(cf.server, client.WithToken(token))
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns a tabwriter for a table with the given header, if any.
func newTable(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(header) > 0 {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	return tw
}

// row writes one row of a table, each cell as shown by cellText.
func row(tw *tabwriter.Writer, cells ...string) {
	for i, c := range cells {
		cells[i] = cellText(c)
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// cellText shows s on one line of a table as it is: a control character
// (tabs and line breaks too), a format character (bidi overrides,
// zero-width characters) or a line or paragraph separator is written as
// an escape such as \u202e, so that no text from the server can realign
// a table or reorder what it shows. The API refuses them in resource
// names and descriptions; outputs a task records (progress messages,
// errors, created resources) may still hold them.
func cellText(s string) string {
	special := func(c rune) bool { return unicode.In(c, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) }
	if !strings.ContainsFunc(s, special) {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		if special(c) {
			fmt.Fprintf(&b, "\\u%04x", c)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// timeText shows a timestamp in local time, to the second, or "-".
func timeText(t *apiv1.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// durationText rounds a duration for people: 1.234s, 12.3s, 2m3s.
func durationText(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// workerName is the name of a task's worker, or "".
func workerName(t *apiv1.Task) string {
	if t.Worker == nil {
		return ""
	}
	return t.Worker.Name
}

// refID shortens an href to its last path element, the id.
func refID(href string) string {
	if i := strings.LastIndexByte(strings.TrimSuffix(href, "/"), '/'); i >= 0 {
		return strings.TrimSuffix(href[i+1:], "/")
	}
	return href
}

// needArgs refuses a command line without arguments, saying what to give.
func needArgs(hint string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) == 0 {
			return fmt.Errorf("no arguments: %s", hint)
		}
		return nil
	}
}

// oneArg refuses a command line without exactly one argument.
func oneArg(hint string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%d arguments: %s", len(args), hint)
		}
		return nil
	}
}
