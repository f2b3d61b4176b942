// Command stint runs Stint's servers and talks to them: stint migrate,
// stint worker and stint bench run against a database; see stint --help.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stint: "+oneLine(err.Error()))
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
