package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/auth"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/internal/syncbuf"
	"github.com/stint-dev/stint/store"
)

// The browser tests drive the web UI of a real API server (httptest, in the
// test's process, on a fresh store) with a real worker, in Debian's
// Chromium, headless, through chromedp. Each test starts its own browser.

// Timeouts. Waits poll for a condition; these only bound them.
const (
	// waitTimeout bounds one wait for a condition on the page or in the API.
	waitTimeout = 20 * time.Second
	// browserStartTimeout bounds starting Chromium and opening its tab.
	browserStartTimeout = 60 * time.Second
	// pollInterval is how often a wait checks its condition again.
	pollInterval = 50 * time.Millisecond
)

// The laptop viewport every page is shown and captured at; phoneWidth by
// phoneHeight is the phone's.
const (
	laptopWidth, laptopHeight = 1280, 900
	phoneWidth, phoneHeight   = 390, 844
)

// workerName is the name of the worker every test runs.
const workerName = "worker-1@ui-test"

// chromiumPath returns the Chromium the tests drive: $STINT_CHROMIUM, or
// Debian's /usr/bin/chromium. A missing browser fails the test (never
// skips it), saying how to install it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("STINT_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() {
		t.Fatalf("no Chromium at %s: install it as root with `apt-get install -y chromium` (scripts/test does), or set STINT_CHROMIUM to its path", path)
	}
	return path
}

var (
	shotsOnce sync.Once
	shotsDir  string
	shotsErr  error
)

// screenshotDir returns the folder the screenshots go to, made once per
// test binary: $STINT_UI_SCREENSHOTS, or a new temporary folder that is
// kept after the tests (CI keeps the screenshots as artifacts).
func screenshotDir(t *testing.T) string {
	t.Helper()
	shotsOnce.Do(func() {
		if d := os.Getenv("STINT_UI_SCREENSHOTS"); d != "" {
			shotsDir, shotsErr = d, os.MkdirAll(d, 0o755)
			return
		}
		shotsDir, shotsErr = os.MkdirTemp("", "stint-ui-screenshots-*")
	})
	if shotsErr != nil {
		t.Fatalf("screenshot folder: %v", shotsErr)
	}
	return shotsDir
}

// env is an API server with the web UI on a fresh store of one engine, and
// a worker on that store, both until the test ends.
type env struct {
	t      *testing.T
	ctx    context.Context
	eng    enginetest.Engine
	store  store.Store
	url    string // the server's base URL, no trailing slash
	worker string // the worker's name
	gates  *gates
	runs   *runs
}

// newEnv starts a server configured by cfg (Store and Registry are set
// here) and a worker. Task types: the built-ins, repo.sync (stint.sleep
// under an application's name, for pages that look real), test.gate
// (runs until the test opens its gate; see env.open) and test.fail (fails
// at once, its error numbering the task's runs; see failing).
func newEnv(t *testing.T, eng enginetest.Engine, cfg api.Config) *env {
	t.Helper()
	chromiumPath(t) // first: without a browser, there is nothing to test
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, eng: eng, worker: workerName, gates: &gates{open: map[string]chan struct{}{}},
		runs: &runs{n: map[uuid.UUID]int{}}}
	e.store = eng.Open(t)
	reg := stint.NewRegistry()
	stint.Register(reg, "repo.sync", stint.Sleep)
	stint.Register(reg, "test.gate", func(ctx context.Context, _ *stint.Run, a gateArgs) (gateArgs, error) {
		select {
		case <-e.gates.get(a.Gate):
			return a, nil
		case <-ctx.Done():
			return a, ctx.Err()
		}
	})
	stint.Register(reg, "test.fail", func(_ context.Context, run *stint.Run, a failArgs) (struct{}, error) {
		return struct{}{}, fmt.Errorf("%s (run %d)", a.Message, e.runs.next(run.ID()))
	})

	logs := &syncbuf.Buffer{}
	cfg.Store, cfg.Registry, cfg.Engine, cfg.Version = e.store, reg, eng.Name, "test"
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	e.url = hs.URL
	t.Cleanup(func() { // runs after the server and the worker stopped, below
		if out := logs.String(); t.Failed() && out != "" {
			t.Logf("server and worker log:\n%s", out)
		}
	})
	t.Cleanup(func() { srv.Close(); hs.Close() })

	w, err := stint.NewWorker(e.store, reg, stint.WorkerConfig{Name: e.worker, Concurrency: 4,
		HeartbeatInterval: 200 * time.Millisecond, PollInterval: 200 * time.Millisecond,
		ShutdownGrace: 200 * time.Millisecond, WorkDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	t.Cleanup(func() {
		wcancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	return e
}

// gateArgs are the args of test.gate.
type gateArgs struct {
	Gate string `json:"gate"`
}

// failArgs are the args of test.fail.
type failArgs struct {
	Message string `json:"message"`
}

// failing returns the body of a dispatch of test.fail: each run fails
// with the message and the run's number, "message (run 2)".
func failing(message string) apiv1.DispatchTask {
	return apiv1.DispatchTask{Name: "test.fail", Args: mustJSON(failArgs{Message: message})}
}

// runs counts the runs of each task of test.fail.
type runs struct {
	mu sync.Mutex
	n  map[uuid.UUID]int
}

// next counts a run of the task and returns its number, from 1.
func (r *runs) next(id uuid.UUID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n[id]++
	return r.n[id]
}

// gates are the named gates test.gate tasks wait on.
type gates struct {
	mu   sync.Mutex
	open map[string]chan struct{}
}

func (g *gates) get(name string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch, ok := g.open[name]
	if !ok {
		ch = make(chan struct{})
		g.open[name] = ch
	}
	return ch
}

// open lets every test.gate task of the gate complete, now and later.
func (e *env) open(gate string) {
	ch := e.gates.get(gate)
	e.gates.mu.Lock()
	defer e.gates.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// gate returns the body of a dispatch of test.gate on gate.
func gate(name string, exclusive ...string) apiv1.DispatchTask {
	return apiv1.DispatchTask{Name: "test.gate", Args: mustJSON(gateArgs{Gate: name}), ExclusiveResources: exclusive}
}

// sleep returns the body of a dispatch of repo.sync (stint.sleep).
func sleep(seconds float64, fail bool, exclusive ...string) apiv1.DispatchTask {
	return apiv1.DispatchTask{Name: "repo.sync", Args: mustJSON(stint.SleepArgs{Seconds: seconds, Fail: fail}), ExclusiveResources: exclusive}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// addUser creates a user and returns a new token of it.
func (e *env) addUser(name string, role store.Role) string {
	e.t.Helper()
	if err := e.store.CreateUser(e.ctx, name, role); err != nil {
		e.t.Fatal(err)
	}
	tok, err := auth.New()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.AddToken(e.ctx, store.NewToken{ID: tok.ID, User: name, Hash: tok.Hash}); err != nil {
		e.t.Fatal(err)
	}
	return tok.Secret
}

// call sends an API request with the token ("" for none), expects the
// status, and decodes the answer into out (if not nil).
func (e *env) call(token, method, path string, body any, status int, out any) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(mustJSON(body))
	}
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
}

// dispatch dispatches a task through the API as the token's user and
// returns its id.
func (e *env) dispatch(token string, body apiv1.DispatchTask) uuid.UUID {
	e.t.Helper()
	var ref apiv1.TaskRef
	e.call(token, "POST", "/api/v1/tasks", body, http.StatusAccepted, &ref)
	id, err := apiv1.ParseTaskRef(ref.Task)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// cancelTask cancels a task through the API.
func (e *env) cancelTask(token string, id uuid.UUID) {
	e.t.Helper()
	e.call(token, "PATCH", "/api/v1/tasks/"+id.String(), apiv1.PatchTask{State: "canceled"}, http.StatusOK, nil)
}

// task reads a task through the API.
func (e *env) task(token string, id uuid.UUID) apiv1.Task {
	e.t.Helper()
	var t apiv1.Task
	e.call(token, "GET", "/api/v1/tasks/"+id.String(), nil, http.StatusOK, &t)
	return t
}

// waitTask polls a task through the API until it is in state.
func (e *env) waitTask(token string, id uuid.UUID, state string) apiv1.Task {
	e.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		t := e.task(token, id)
		if t.State == state {
			return t
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("task %s (%s) is %s after %s, waited for %s", id, t.Name, t.State, waitTimeout, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitProgress polls a running task through the API until it reported
// some progress, so that a page shows a bar that has started.
func (e *env) waitProgress(token string, id uuid.UUID) {
	e.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		t := e.task(token, id)
		if len(t.ProgressReports) > 0 && t.ProgressReports[0].Done > 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("task %s (%s, %s) reported no progress in %s", id, t.Name, t.State, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// page is one tab of a Chromium of its own, showing the env's UI at the
// laptop viewport.
type page struct {
	t       *testing.T
	e       *env
	ctx     context.Context // the tab's
	console *syncbuf.Buffer // what the page logged, and its uncaught exceptions
}

// newPage starts a headless Chromium and opens a tab. When the test
// fails, the tab's address, text and console are logged and a screenshot
// saved first; the browser closes when the test ends.
func (e *env) newPage() *page {
	t := e.t
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(laptopWidth, laptopHeight),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	p := &page{t: t, e: e, ctx: ctx, console: &syncbuf.Buffer{}}
	consoleDone := make(chan struct{})
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		<-consoleDone
	})

	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.EmulateViewport(laptopWidth, laptopHeight)) }()
	select {
	case err := <-started:
		if err != nil {
			close(consoleDone)
			t.Fatalf("starting Chromium: %v", err)
		}
	case <-time.After(browserStartTimeout):
		close(consoleDone)
		t.Fatalf("Chromium did not start within %s", browserStartTimeout)
	}
	messages := chromedp.Console(ctx)
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			fmt.Fprintln(p.console, m.String())
		}
	}()
	t.Cleanup(p.diagnose) // before the browser closes
	return p
}

// diagnose logs the page and saves a screenshot of it if the test failed.
func (p *page) diagnose() {
	if !p.t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	where, _ := chromedp.Run(ctx, chromedp.Location())
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : "(no body)"`))
	if err != nil {
		text = "(could not read the page: " + err.Error() + ")"
	}
	p.t.Logf("the page at %s reads:\n%s", where, text)
	if c := p.console.String(); c != "" {
		p.t.Logf("the page's console:\n%s", c)
	}
	if shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		p.saveAs("FAIL-"+safeName(p.t.Name())+".png", shot)
	}
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(s string) string { return unsafeChars.ReplaceAllString(s, "_") }

// save writes a PNG into the screenshot folder as <engine>-<name>.png and
// logs its path.
func (p *page) save(name string, shot []byte) {
	p.t.Helper()
	p.saveAs(p.e.eng.Name+"-"+name+".png", shot)
}

// saveAs writes a file into the screenshot folder and logs its path.
func (p *page) saveAs(file string, shot []byte) {
	p.t.Helper()
	path := filepath.Join(screenshotDir(p.t), file)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		p.t.Errorf("saving a screenshot: %v", err)
		return
	}
	p.t.Logf("screenshot: %s", path)
}

// do runs actions in the tab, bounded by waitTimeout; what names them in
// the failure.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// open loads the UI afresh at the route, e.g. "#/tasks" (a new document,
// so that nothing stays from an earlier page).
func (p *page) open(route string) {
	p.t.Helper()
	p.navigate(p.e.url + "/ui/" + route)
}

// navigate loads a URL in a new document and checks that the server
// answered it with 200.
func (p *page) navigate(url string) {
	p.t.Helper()
	p.do("leaving the page", chromedp.Navigate("about:blank"))
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	switch {
	case err != nil:
		p.t.Fatalf("opening %s: %v", url, err)
	case resp == nil || resp.Status != http.StatusOK:
		status := int64(0)
		if resp != nil {
			status = resp.Status
		}
		p.t.Fatalf("opening %s: HTTP status %d, want 200 (is the UI served at /ui/?)", url, status)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is truthy in the page,
// evaluating it every pollInterval (from the test, so that the page's
// Content-Security-Policy does not apply); what says what the test waits
// for, in the failure.
func (p *page) waitJS(what, expr string) {
	p.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")", awaitPromise))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("not within %s", waitTimeout)
			}
			p.t.Fatalf("waiting for %s: %v\n(expression: %s)", what, err, expr)
		}
		time.Sleep(pollInterval)
	}
}

// awaitPromise makes an evaluation wait for the promise its expression
// returns.
func awaitPromise(p *runtime.EvaluateParams) { p.AwaitPromise = new(true) }

// waitFor waits until the CSS selector matches an element.
func (p *page) waitFor(what, selector string) {
	p.t.Helper()
	p.waitJS(what+" ("+selector+")", fmt.Sprintf("document.querySelector(%s) !== null", jsString(selector)))
}

// waitText waits until the element the selector matches shows text
// (trimmed) equal to want.
func (p *page) waitText(what, selector, want string) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf("%s: %s reads %q", what, selector, want),
		fmt.Sprintf("(document.querySelector(%s)?.textContent ?? '').trim() === %s", jsString(selector), jsString(want)))
}

// count returns how many elements the selector matches.
func (p *page) count(selector string) int {
	p.t.Helper()
	return eval[int](p, fmt.Sprintf("document.querySelectorAll(%s).length", jsString(selector)))
}

// visible reports whether the selector matches an element that is shown.
func (p *page) visible(selector string) bool {
	p.t.Helper()
	return eval[bool](p, visibleJS(selector))
}

// visibleJS is an expression: the selector matches a shown element.
func visibleJS(selector string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll(%s)).some(el => !el.hidden &&
		el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden')`, jsString(selector))
}

// click waits until the selector matches a shown element and clicks it
// with the mouse. A page that rebuilds its DOM as it updates may replace
// the element between the query and the click: the click is tried again
// then.
func (p *page) click(selector string) {
	p.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		p.waitJS(selector+" shown, to click it", visibleJS(selector))
		ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("clicking %s: %v", selector, err)
		}
		time.Sleep(pollInterval)
	}
}

// follow clicks a link until the page shows what the expression waits
// for: a link that a live update re-renders (its text, so its box,
// changed) between the query and the click is missed, as a person's
// click would be, and clicked again.
func (p *page) follow(selector, what, expr string) {
	p.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		p.click(selector)
		for settle := time.Now().Add(2 * time.Second); time.Now().Before(settle); time.Sleep(pollInterval) {
			if eval[bool](p, "!!("+expr+")") {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("clicking %s did not lead to %s within %s", selector, what, waitTimeout)
		}
	}
}

// screenshot captures the viewport (laptop size) as <engine>-<name>.png.
func (p *page) screenshot(name string) []byte {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	p.checkSize(name, shot, laptopWidth, laptopHeight)
	p.save(name, shot)
	return shot
}

// phoneScreenshot shows the page at phone size, captures it as
// <engine>-<name>.png, and returns to the laptop viewport.
func (p *page) phoneScreenshot(name string) {
	p.t.Helper()
	p.do("phone viewport", chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile, chromedp.EmulateScale(1)))
	// Two animation frames: the page has laid itself out at the new size.
	p.waitJS("a layout at phone width", fmt.Sprintf(`innerWidth === %d && new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, phoneWidth))
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	p.checkSize(name, shot, phoneWidth, phoneHeight)
	p.save(name, shot)
	p.do("laptop viewport", chromedp.EmulateViewport(laptopWidth, laptopHeight))
}

// checkSize checks that a screenshot is a PNG of the viewport's size.
func (p *page) checkSize(name string, shot []byte, w, h int) {
	p.t.Helper()
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil {
		p.t.Fatalf("screenshot %s is not a PNG: %v", name, err)
	}
	if cfg.Width != w || cfg.Height != h {
		p.t.Errorf("screenshot %s is %dx%d, want %dx%d", name, cfg.Width, cfg.Height, w, h)
	}
}

// signIn stores a token as the signed-in UI would (sessionStorage
// stint.token) without going through the form; the next open uses it.
func (p *page) signIn(token string) {
	p.t.Helper()
	p.navigate(p.e.url + "/ui/")
	eval[chromedp.Void](p, fmt.Sprintf("sessionStorage.setItem('stint.token', %s)", jsString(token)))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// taskRow is the selector of a task's row on a tasks table, in a state
// if state is not "".
func taskRow(id uuid.UUID, state string) string {
	sel := fmt.Sprintf(`table#tasks-table tbody tr[data-task-id="%s"]`, id)
	if state != "" {
		sel += fmt.Sprintf(`[data-state="%s"]`, state)
	}
	return sel
}

// waitRow waits until the tasks table shows the task in the state, in
// its state cell too, with a link to its page.
func (p *page) waitRow(id uuid.UUID, name, state string) {
	p.t.Helper()
	row := taskRow(id, state)
	p.waitFor(fmt.Sprintf("the row of task %s (%s) %s", id, name, state), row)
	p.waitText("its state cell", row+" td.task-state", state)
	p.waitJS(fmt.Sprintf("its name cell to link to it and name %s", name), fmt.Sprintf(
		`(document.querySelector(%s)?.textContent ?? '').includes(%s)`,
		jsString(row+fmt.Sprintf(` td.task-name a[href="#/tasks/%s"]`, id)), jsString(name)))
}

// onEngines runs f once per engine, the engines in parallel: each run has
// its own store, server, worker and browser, and most of a browser test
// is waiting.
func onEngines(t *testing.T, f func(t *testing.T, eng enginetest.Engine)) {
	t.Helper()
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		t.Parallel()
		f(t, eng)
	})
}
