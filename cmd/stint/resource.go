package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
)

// resourceOrderings are the values of resource list --ordering.
var resourceOrderings = []string{"name", "-name", "waiting", "-waiting", "holders", "-holders"}

// resourceTasksShown bounds the task ids resource show lists per list
// (holders, waiting); -o json has all the API sends.
const resourceTasksShown = 10

func newResourceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resource",
		Short: "List and show resources, set and remove their capacities on a Stint server",
		Long: `A resource is a name tasks hold exclusively or shared (stint task dispatch
--exclusive, --shared). Without a capacity any number of tasks hold one shared
at once; with a capacity N at most N do, and the others wait in dispatch
order. List the resources that are held, waited for or bounded, show one with
its holders and its queue, and set or remove capacities (admins only).`,
		Example: `  stint resource list --busy
  stint resource show repo:1
  stint resource set repo:1 --capacity 4
  stint resource unset repo:1`,
		Args: cobra.NoArgs, // so that a mistyped subcommand is an error
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newResourceListCommand(), newResourceShowCommand(), newResourceSetCommand(), newResourceUnsetCommand())
	return cmd
}

func newResourceListCommand() *cobra.Command {
	var (
		busy                   bool
		nameContains, ordering string
		cf                     *clientFlags
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the resources that are held, waited for or have a capacity",
		Long: `List the resources that tasks hold or wait for, or that have a capacity, the
most waited for first unless --ordering says otherwise: a table, or with -o
json a list of the API's resource documents. Every page is read.`,
		Example: `  stint resource list --busy
  stint resource list --name-contains repo: --ordering name -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := resourceListQuery(busy, nameContains, ordering)
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			resources, err := allResources(cmd, c, q)
			if err != nil {
				return err
			}
			if cf.jsonOut() {
				return writeJSON(cmd.OutOrStdout(), resources)
			}
			now := time.Now()
			tw := newTable(cmd.OutOrStdout(), "NAME", "CAPACITY", "HOLDERS", "WAITING", "OLDEST WAITING")
			for i := range resources {
				r := &resources[i]
				row(tw, r.Name, capacityText(r.Capacity, "-"), holdersText(r), strconv.Itoa(r.Waiting), waitingAgeText(r.OldestWaitingSince, now))
			}
			return tw.Flush()
		},
	}
	cf = addClientFlags(cmd)
	f := cmd.Flags()
	f.BoolVar(&busy, "busy", false, "only resources that are held or waited for")
	f.StringVar(&nameContains, "name-contains", "", "only resources whose name contains this")
	f.StringVar(&ordering, "ordering", "-waiting", "sort by one of "+strings.Join(resourceOrderings, ", "))
	return cmd
}

// resourceListQuery checks the flags of resource list and turns them into
// the API's query, without limit and offset.
func resourceListQuery(busy bool, nameContains, ordering string) (url.Values, error) {
	q := url.Values{}
	if busy {
		q.Set("busy", "true")
	}
	if nameContains != "" {
		q.Set("name__contains", nameContains)
	}
	if !slices.Contains(resourceOrderings, ordering) {
		return nil, fmt.Errorf("--ordering %q: not an ordering; orderings are %s", ordering, strings.Join(resourceOrderings, ", "))
	}
	q.Set("ordering", ordering)
	return q, nil
}

// allResources reads every page of GET /resources with the query q, the
// largest pages the API gives. It returns an empty list, not nil, when no
// resource matches.
func allResources(cmd *cobra.Command, c *client.Client, q url.Values) ([]apiv1.Resource, error) {
	all := []apiv1.Resource{}
	q.Set("limit", strconv.Itoa(apiv1.MaxLimit))
	for offset := 0; ; {
		if offset > 0 {
			q.Set("offset", strconv.Itoa(offset))
		}
		page, err := c.ListResources(cmd.Context(), q)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Results...)
		offset += len(page.Results)
		if page.Next == nil || *page.Next == "" || len(page.Results) == 0 {
			return all, nil
		}
	}
}

// capacityText is a capacity, or none when there is no capacity.
func capacityText(capacity *int, none string) string {
	if capacity == nil {
		return none
	}
	return strconv.Itoa(*capacity)
}

// holdersText is how many tasks hold r: "2/4" against its capacity, "2"
// without one, then " (exclusive)" when its one holder holds it
// exclusively.
func holdersText(r *apiv1.Resource) string {
	text := strconv.Itoa(r.Holders.Count)
	if r.Capacity != nil {
		text += "/" + strconv.Itoa(*r.Capacity)
	}
	if r.Holders.Exclusive {
		text += " (exclusive)"
	}
	return text
}

// waitingAgeText is how long the oldest waiting task has waited at now, or
// "-" when none waits.
func waitingAgeText(since *apiv1.Time, now time.Time) string {
	if since == nil || since.IsZero() {
		return "-"
	}
	return durationText(max(now.Sub(since.Time), 0))
}

// resourceName checks a resource name given as an argument. Besides the
// empty name it refuses the names GET and PUT /resources/{name} cannot
// address, though tasks may hold them: the server serves a path ending in
// "/" (%2F too) as the path without it, so "repo/" would be read or set as
// "repo", and cleans the dot segments "." and ".." away, so "." would be
// read as GET /resources. The rest of the server's checks are its own.
func resourceName(arg string) (string, error) {
	switch {
	case arg == "":
		return "", errors.New("resource name: is empty")
	case strings.HasSuffix(arg, "/"):
		return "", fmt.Errorf("resource name %q: ends with \"/\", which the API's /resources/{name} cannot address", arg)
	case arg == "." || arg == "..":
		return "", fmt.Errorf("resource name %q: a dot segment, which the API's /resources/{name} cannot address", arg)
	}
	return arg, nil
}

// sameResource checks that the server answered for the resource asked.
func sameResource(name string, r *apiv1.Resource) error {
	if r.Name != name {
		return fmt.Errorf("resource %s: the server answered for resource %q instead", cellText(name), r.Name)
	}
	return nil
}

func newResourceShowCommand() *cobra.Command {
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a resource: capacity, holders, waiting tasks",
		Long: fmt.Sprintf(`Show a resource: its capacity, the tasks that hold it, how many wait for it
and since when, and the first %d waiting tasks in queue order. With -o json it
prints the API's document, with the first 100 holders and waiting tasks. A
user sees the counts of every task but the ids of its own tasks only.`, resourceTasksShown),
		Example: `  stint resource show repo:1`,
		Args:    oneArg("give one resource name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := resourceName(args[0])
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			r, err := c.Resource(cmd.Context(), name)
			if err != nil {
				return fmt.Errorf("resource %s: %w", cellText(name), err)
			}
			if err := sameResource(name, r); err != nil {
				return err
			}
			if cf.jsonOut() {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			showResource(cmd.OutOrStdout(), r, time.Now())
			return nil
		},
	}
	cf = addClientFlags(cmd)
	return cmd
}

// showResource writes a resource for people to read, one field a line.
func showResource(w io.Writer, r *apiv1.Resource, now time.Time) {
	tw := newTable(w)
	field := func(name, value string) {
		fmt.Fprintf(tw, "%s:\t%s\n", name, cellText(value))
	}
	// tasks lists up to resourceTasksShown task ids, one a line, and says
	// how many of count are not shown.
	tasks := func(name string, hrefs []string, count int) {
		for i, h := range hrefs {
			if i == resourceTasksShown {
				break
			}
			field(label(name, i), refID(h))
		}
		shown := min(len(hrefs), resourceTasksShown)
		if more := count - shown; more > 0 {
			field(label(name, shown), fmt.Sprintf("(%d more not shown)", more))
		}
	}
	field("Name", r.Name)
	field("Capacity", capacityText(r.Capacity, "none"))
	field("Holders", holdersText(r))
	tasks("Holder tasks", r.Holders.Tasks, r.Holders.Count)
	field("Waiting", strconv.Itoa(r.Waiting))
	if r.OldestWaitingSince != nil && !r.OldestWaitingSince.IsZero() {
		field("Oldest waiting", fmt.Sprintf("%s (since %s)", waitingAgeText(r.OldestWaitingSince, now), timeText(r.OldestWaitingSince)))
	}
	if r.WaitingTasks != nil {
		tasks("Waiting tasks", *r.WaitingTasks, r.Waiting)
	}
	tw.Flush() //nolint:errcheck // as every write to w
}

func newResourceSetCommand() *cobra.Command {
	var (
		capacity string
		cf       *clientFlags
	)
	cmd := &cobra.Command{
		Use:   "set NAME --capacity N",
		Short: "Set the capacity of a resource (admins only)",
		Long: fmt.Sprintf(`Set the capacity of a resource: at most N tasks (1 to %d) hold it shared at
once; an exclusive holder still holds it alone. Tasks on it still start in
dispatch order. Raising it starts the next waiting tasks at once; lowering it
lets the holders finish. Prints "resource NAME: capacity N (H holders, W
waiting)" (or, with -o json, the resource). Only admins may set capacities.`, stint.MaxCapacity),
		Example: `  stint resource set repo:1 --capacity 4`,
		Args:    oneArg("give one resource name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := resourceName(args[0])
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("capacity") {
				return fmt.Errorf("--capacity is required: a number from 1 to %d (stint resource unset NAME removes it)", stint.MaxCapacity)
			}
			n, err := parseCapacity(capacity)
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			r, err := c.SetCapacity(cmd.Context(), name, &n)
			if err != nil {
				return fmt.Errorf("set the capacity of resource %s: %w", cellText(name), err)
			}
			if err := sameResource(name, r); err != nil {
				return err
			}
			return printResourceLine(cmd.OutOrStdout(), cf, r)
		},
	}
	cf = addClientFlags(cmd)
	cmd.Flags().StringVar(&capacity, "capacity", "", fmt.Sprintf("tasks that may hold the resource shared at once, 1 to %d (required)", stint.MaxCapacity))
	return cmd
}

// parseCapacity reads the value of --capacity: a whole number from 1 to
// stint.MaxCapacity.
func parseCapacity(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > stint.MaxCapacity {
		return 0, fmt.Errorf("--capacity %q: must be a whole number from 1 to %d (stint resource unset NAME removes it)", s, stint.MaxCapacity)
	}
	return n, nil
}

func newResourceUnsetCommand() *cobra.Command {
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "unset NAME",
		Short: "Remove the capacity of a resource (admins only)",
		Long: `Remove the capacity of a resource: any number of tasks may hold it shared
again, and the waiting ones that may start do. Prints "resource NAME: no
capacity (H holders, W waiting)" (or, with -o json, the resource). Only admins
may remove capacities.`,
		Example: `  stint resource unset repo:1`,
		Args:    oneArg("give one resource name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := resourceName(args[0])
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			r, err := c.SetCapacity(cmd.Context(), name, nil)
			if err != nil {
				return fmt.Errorf("remove the capacity of resource %s: %w", cellText(name), err)
			}
			if err := sameResource(name, r); err != nil {
				return err
			}
			return printResourceLine(cmd.OutOrStdout(), cf, r)
		},
	}
	cf = addClientFlags(cmd)
	return cmd
}

// printResourceLine prints r as cf asks: the API document, or
// resourceLine.
func printResourceLine(w io.Writer, cf *clientFlags, r *apiv1.Resource) error {
	if cf.jsonOut() {
		return writeJSON(w, r)
	}
	_, err := fmt.Fprintln(w, resourceLine(r))
	return err
}

// resourceLine is a resource in one line: "resource repo:1: capacity 4 (2
// holders, 5 waiting)", or "no capacity" when it has none.
func resourceLine(r *apiv1.Resource) string {
	capacity := "no capacity"
	if r.Capacity != nil {
		capacity = "capacity " + strconv.Itoa(*r.Capacity)
	}
	holders := "holders"
	if r.Holders.Count == 1 {
		holders = "holder"
	}
	return fmt.Sprintf("resource %s: %s (%d %s, %d waiting)", cellText(r.Name), capacity, r.Holders.Count, holders, r.Waiting)
}
