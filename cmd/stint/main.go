// Command stint runs Stint's servers and talks to them: stint serve, api,
// worker, migrate, bench and user work on a database; stint task, worker
// list and status talk to a server; see stint --help.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/client"
)

func main() {
	// A worker runs the tasks of types registered with InChildProcess
	// (stint.process.*) by executing this binary again: such a child runs
	// its task and exits here. Its registry is the one the binary's workers
	// use (stint worker, stint serve).
	stint.RunChildProcess(stint.NewRegistry())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		msg := oneLine(err.Error())
		if client.IsStatus(err, http.StatusUnauthorized) {
			msg += " (pass --token or set STINT_TOKEN; stint user token NAME makes one)"
		}
		fmt.Fprintln(os.Stderr, "stint: "+msg)
		os.Exit(exitCode(err))
	}
}

// oneLine folds a multi-line error message (pgx reports one line per
// address it tried) into one line.
func oneLine(msg string) string {
	var parts []string
	for _, line := range strings.Split(msg, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, " ")
}
