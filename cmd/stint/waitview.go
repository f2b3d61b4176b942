package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/google/uuid"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
)

// newWaitView returns the view of a wait that writes to out: nothing with
// -o json, progress bars on a terminal, plain lines otherwise.
func newWaitView(out io.Writer, jsonOut bool) waitView {
	switch {
	case jsonOut:
		return quietView{}
	case isTerminal(out):
		return newBarView(out)
	default:
		return plainView{out}
	}
}

// isTerminal reports whether w is a terminal with a width (a pseudo
// terminal may have none, and bars then show nothing).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	return err == nil && width > 0
}

// quietView shows nothing.
type quietView struct{}

func (quietView) show(*client.WaitedTask, bool)  {}
func (quietView) end([]*client.WaitedTask, bool) {}

// plainView prints "<id> <name> <state>" when a task's state changes, so
// each task's last line is its final state; at a timeout it prints one
// more line for each task still incomplete, ending with "(timeout)".
type plainView struct{ w io.Writer }

func (v plainView) show(t *client.WaitedTask, stateChanged bool) {
	if stateChanged {
		fmt.Fprintf(v.w, "%s %s %s\n", t.ID, t.Name, t.State)
	}
}

func (v plainView) end(tasks []*client.WaitedTask, timedOut bool) {
	if !timedOut {
		return
	}
	for _, t := range tasks {
		if !t.Final() {
			fmt.Fprintf(v.w, "%s %s %s (timeout)\n", t.ID, t.Name, t.State)
		}
	}
}

// maxBars is how many bars stay on screen once tasks end: past it, the
// bars of ended tasks are removed.
const maxBars = 20

// barView draws one progress bar per task with mpb. A bar follows the
// task's first progress report that has a total; without one it is a
// spinner.
type barView struct {
	p     *mpb.Progress
	bars  map[uuid.UUID]*taskBar
	shown int // bars on screen
}

func newBarView(out io.Writer) *barView {
	return &barView{
		p:    mpb.New(mpb.WithOutput(out), mpb.WithWidth(32), mpb.WithAutoRefresh()),
		bars: map[uuid.UUID]*taskBar{},
	}
}

// taskBar is one task's bar and what its decorators show; the decorators
// run in mpb's goroutine.
type taskBar struct {
	bar *mpb.Bar

	mu      sync.Mutex
	state   string
	message string
}

func (tb *taskBar) set(state, message string) {
	tb.mu.Lock()
	tb.state, tb.message = state, message
	tb.mu.Unlock()
}

func (tb *taskBar) get() (state, message string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.state, tb.message
}

func (v *barView) show(t *client.WaitedTask, _ bool) {
	tb := v.bars[t.ID]
	if tb == nil {
		tb = v.add(t)
	}
	total, done, message := barProgress(t.ProgressReports)
	tb.set(t.State, message)
	if total > 0 {
		tb.bar.SetTotal(total, false)
		tb.bar.SetCurrent(done)
	}
	if !t.Final() {
		return
	}
	switch {
	case v.shown > maxBars:
		tb.bar.Abort(true)
		v.shown--
	case t.State == "completed":
		tb.bar.SetTotal(max(total, done, 1), true)
	default:
		tb.bar.Abort(false)
	}
}

func (v *barView) add(t *client.WaitedTask) *taskBar {
	tb := &taskBar{}
	// Created with total 0 so that progress never completes a bar: only
	// the task's end does.
	tb.bar = v.p.New(0, fillerBuilder{},
		mpb.PrependDecorators(
			decor.Name(fmt.Sprintf("%s %s", t.ID, t.Name), decor.WCSyncSpaceR),
			decor.Any(func(decor.Statistics) string { s, _ := tb.get(); return s }, decor.WCSyncSpaceR),
		),
		mpb.AppendDecorators(decor.Any(func(st decor.Statistics) string {
			_, msg := tb.get()
			if st.Total > 0 && !st.Completed {
				return fmt.Sprintf("%d/%d %s", st.Current, st.Total, msg)
			}
			return msg
		}, decor.WC{C: decor.DextraSpace})),
	)
	v.bars[t.ID] = tb
	v.shown++
	return tb
}

func (v *barView) end(tasks []*client.WaitedTask, timedOut bool) {
	for _, t := range tasks {
		if tb := v.bars[t.ID]; tb != nil && !t.Final() {
			if timedOut {
				tb.set(t.State+" (timeout)", "")
			}
			tb.bar.Abort(false)
		}
	}
	v.p.Wait()
}

// barProgress returns the total and done of a task's first progress report
// with a total (total 0 when none has one), and that report's message, or
// the first report's.
func barProgress(reports []apiv1.ProgressReport) (total, done int64, message string) {
	for _, r := range reports {
		if r.Total != nil && *r.Total > 0 {
			return *r.Total, min(r.Done, *r.Total), r.Message
		}
	}
	if len(reports) > 0 {
		return 0, 0, reports[0].Message
	}
	return 0, 0, ""
}

// fillerBuilder builds a filler that draws a bar when the total is known
// and a spinner otherwise.
type fillerBuilder struct{}

func (fillerBuilder) Build() mpb.BarFiller {
	bar, spinner := mpb.BarStyle().Build(), mpb.SpinnerStyle().Build()
	return mpb.BarFillerFunc(func(w io.Writer, st decor.Statistics) error {
		if st.Total > 0 {
			return bar.Fill(w, st)
		}
		return spinner.Fill(w, st)
	})
}
