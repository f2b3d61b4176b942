package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/stint-dev/stint/internal/scratchdb"
)

// singleCallers are the numbers of goroutines of the single-insert
// measurement, the same as Stint's dispatch-single scenario.
var singleCallers = []int{1, 8, 50}

// runSingle measures River's Insert of one job per call, back to back, from
// each of singleCallers goroutines for d, each in a fresh scratch database,
// with an insert-only client on pgxpool's default pool (as a new user
// would make it). It returns jobs/s by number of callers.
func runSingle(ctx context.Context, server string, d time.Duration) (map[int]float64, error) {
	out := map[int]float64{}
	for _, callers := range singleCallers {
		rate, err := singleOnce(ctx, server, callers, d)
		if err != nil {
			return nil, fmt.Errorf("%d callers: %w", callers, err)
		}
		out[callers] = rate
	}
	return out, nil
}

func singleOnce(ctx context.Context, server string, callers int, d time.Duration) (float64, error) {
	dsn, drop, err := scratchdb.Create(ctx, server, "stint_riverbench")
	if err != nil {
		return 0, err
	}
	defer drop() //nolint:errcheck // a scratch database; a leftover is named as such
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		return 0, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return 0, fmt.Errorf("migrating River's schema: %w", err)
	}
	client, err := river.NewClient(driver, &river.Config{})
	if err != nil {
		return 0, err
	}
	var (
		count   atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		runErr  error
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; time.Now().Before(deadline); j++ {
				if _, err := client.Insert(ctx, noopArgs{Num: i*1_000_000 + j}, nil); err != nil {
					errOnce.Do(func() { runErr = err })
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	if runErr != nil {
		return 0, runErr
	}
	return float64(count.Load()) / time.Since(start).Seconds(), nil
}

// singleLine formats River's single-insert figures as Stint's
// dispatch-single line is formatted.
func singleLine(rates map[int]float64) string {
	parts := make([]string, len(singleCallers))
	for i, c := range singleCallers {
		parts[i] = fmt.Sprintf("%d callers %.0f jobs/s", c, rates[c])
	}
	return "river-insert-single: " + strings.Join(parts, ", ") + fmt.Sprintf(" (client.Insert of one job per call, River %s)", riverVersion())
}

// callerRate matches "N callers R tasks/s" in dispatch-single's line.
var callerRate = regexp.MustCompile(`(\d+) callers (\d+) tasks/s`)

// postRate matches the POST /tasks figures in the http scenario's lines.
var postRate = regexp.MustCompile(`(?m)^http (POST /tasks(?: [a-z ]+)?): (\d+) req/s`)

// compareSingle runs stint's dispatch-single and http scenarios on server
// for d each and prints their figures beside River's, with the ratios that
// issue 15's floors are stated in.
func compareSingle(ctx context.Context, stint, server string, d time.Duration, river map[int]float64) error {
	out, err := runStint(ctx, stint, server, d, "dispatch-single", "http")
	if err != nil {
		return err
	}
	os.Stdout.WriteString(out)
	for _, m := range callerRate.FindAllStringSubmatch(out, -1) {
		callers, _ := strconv.Atoi(m[1])
		rate, _ := strconv.ParseFloat(m[2], 64)
		if r := river[callers]; r > 0 {
			fmt.Printf("ratio dispatch-single / river-insert-single, %d callers: %.2f\n", callers, rate/r)
		}
	}
	if r := river[50]; r > 0 {
		for _, m := range postRate.FindAllStringSubmatch(out, -1) {
			rate, _ := strconv.ParseFloat(m[2], 64)
			fmt.Printf("ratio http %s / river-insert-single, 50 callers: %.2f\n", m[1], rate/r)
		}
	}
	return nil
}

// runStint runs PATH bench with the given scenarios and returns its output.
func runStint(ctx context.Context, stint, server string, d time.Duration, scenarios ...string) (string, error) {
	args := []string{"bench", "--db", server, "--duration", d.String()}
	for _, s := range scenarios {
		args = append(args, "--scenario", s)
	}
	cmd := exec.CommandContext(ctx, stint, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("stint bench: %w", err)
	}
	return string(out), nil
}
