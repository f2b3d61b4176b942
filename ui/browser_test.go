package ui_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/auth"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
)

// updateDocs rewrites docs/ui-tasks.png, the README's screenshot, from
// TestTasksPageListsTasks:
//
//	go test ./ui/ -run TestTasksPageListsTasks/sqlite -update-docs
var updateDocs = flag.Bool("update-docs", false, "rewrite docs/ui-tasks.png from the tasks page")

// docsScreenshotLimit is the most docs/ui-tasks.png may weigh.
const docsScreenshotLimit = 100 << 10

// TestTasksPageListsTasks: the tasks page lists dispatched tasks, each in
// its state, with a link to its page and a progress bar while it runs.
// It saves the tasks page at laptop and phone size.
func TestTasksPageListsTasks(t *testing.T) {
	onEngines(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		completed := e.dispatch("", apiv1.DispatchTask{Name: "stint.noop"})
		e.waitTask("", completed, "completed")
		failed := e.dispatch("", sleep(0.1, true, "repo:7"))
		e.waitTask("", failed, "failed")
		running := e.dispatch("", sleep(120, false, "repo:42"))
		waiting := e.dispatch("", sleep(5, false, "repo:42"))
		canceled := e.dispatch("", sleep(5, false, "repo:42"))
		e.cancelTask("", canceled)
		e.waitTask("", running, "running")
		e.waitProgress("", running)

		p := e.newPage()
		p.open("#/tasks")
		p.waitFor("the tasks page", "section#tasks-page")
		for _, c := range []struct {
			id          uuid.UUID
			name, state string
		}{
			{completed, "stint.noop", "completed"},
			{failed, "repo.sync", "failed"},
			{running, "repo.sync", "running"},
			{waiting, "repo.sync", "waiting"},
			{canceled, "repo.sync", "canceled"},
		} {
			p.waitRow(c.id, c.name, c.state)
		}
		if n := p.count("table#tasks-table tbody tr[data-task-id]"); n != 5 {
			t.Errorf("the tasks table has %d rows, want 5", n)
		}
		p.waitFor("a progress bar in the running task's row", taskRow(running, "running")+" td.task-progress progress")
		p.waitText("the worker of the running task", taskRow(running, "running")+" td.task-worker", e.worker)
		p.waitJS("the last progress bar to start (a stable picture)",
			fmt.Sprintf(`Number(document.querySelector(%s)?.getAttribute('value')) > 0`,
				jsString(taskRow(running, "running")+" td.task-progress progress")))

		shot := p.screenshot("tasks")
		p.phoneScreenshot("tasks-phone")
		if *updateDocs && eng.Name == enginetest.SQLite.Name {
			writeDocsScreenshot(t, shot)
		}

		// The state filter, from the form and from the route.
		eval[bool](p, `(s => (s.value = 'running', s.dispatchEvent(new Event('change', {bubbles: true})), true))(document.querySelector('form#task-filters select#filter-state'))`)
		p.click(`form#task-filters button[type="submit"]`)
		p.waitJS("the route to carry state=running", `/[?&]state=running(&|$)/.test(location.hash)`)
		p.waitJS("only the running task listed", fmt.Sprintf(`document.querySelectorAll('table#tasks-table tbody tr[data-task-id]').length === 1 &&
			document.querySelector(%s) !== null`, jsString(taskRow(running, "running"))))
		p.open("#/tasks?state=failed")
		p.waitJS("only the failed task listed", fmt.Sprintf(`document.querySelectorAll('table#tasks-table tbody tr[data-task-id]').length === 1 &&
			document.querySelector(%s) !== null`, jsString(taskRow(failed, "failed"))))
		if got := eval[string](p, `document.querySelector('select#filter-state').value`); got != "failed" {
			t.Errorf("select#filter-state shows %q for #/tasks?state=failed, want failed", got)
		}
	})
}

// writeDocsScreenshot writes a screenshot into docs/ui-tasks.png,
// re-encoded at the best compression if that makes it smaller, and checks
// that it stays small.
func writeDocsScreenshot(t *testing.T, shot []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > len(shot) { // Chromium's encoder did better
		buf.Reset()
		buf.Write(shot)
	}
	if buf.Len() > docsScreenshotLimit {
		t.Fatalf("docs/ui-tasks.png would weigh %d bytes, more than %d", buf.Len(), docsScreenshotLimit)
	}
	path := filepath.Join("..", "docs", "ui-tasks.png")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, buf.Len())
}

// TestTasksPageIsLive: a task that changes state, and a new task, show on
// the tasks page without a reload.
func TestTasksPageIsLive(t *testing.T) {
	onEngines(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		blocker := e.dispatch("", gate("live", "repo:live"))
		waiter := e.dispatch("", apiv1.DispatchTask{Name: "stint.noop", ExclusiveResources: []string{"repo:live"}})
		e.waitTask("", blocker, "running")

		p := e.newPage()
		p.open("#/tasks")
		p.waitRow(blocker, "test.gate", "running")
		p.waitRow(waiter, "stint.noop", "waiting")
		eval[bool](p, `(window.stintTestMarker = 'still here', true)`)

		e.open("live") // the blocker completes, then the waiter runs
		p.waitRow(blocker, "test.gate", "completed")
		p.waitRow(waiter, "stint.noop", "completed")
		later := e.dispatch("", apiv1.DispatchTask{Name: "stint.noop"})
		p.waitRow(later, "stint.noop", "completed")

		if got := eval[string](p, `String(window.stintTestMarker)`); got != "still here" {
			t.Errorf("window.stintTestMarker is %q: the page was reloaded, want it updated in place", got)
		}
	})
}

// TestTaskPageProgress: the progress bar of a running stint.sleep moves
// on its task page. It saves the task page.
func TestTaskPageProgress(t *testing.T) {
	onEngines(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		body := sleep(30, false, "repo:42")
		body.SharedResources = []string{"remote:github"}
		id := e.dispatch("", body)
		e.waitTask("", id, "running")

		p := e.newPage()
		p.open("#/tasks/" + id.String())
		p.waitFor("the task's page", fmt.Sprintf(`section#task-page[data-task-id="%s"]`, id))
		p.waitText("the task's name", "#task-name", "repo.sync")
		p.waitFor("the task's state", `#task-state[data-state="running"]`)
		p.waitText("the task's worker", "#task-worker", e.worker)
		p.waitText("its exclusive resource", "#task-resources .exclusive li", "repo:42")
		p.waitText("its shared resource", "#task-resources .shared li", "remote:github")
		bar := `#task-progress .progress-report[data-code="stint.sleep"] progress`
		value := fmt.Sprintf(`Number(document.querySelector(%s)?.getAttribute('value'))`, jsString(bar))
		p.waitJS("the progress bar to start", value+" > 0")
		if max := eval[string](p, fmt.Sprintf(`document.querySelector(%s).getAttribute('max')`, jsString(bar))); max != "300" {
			t.Errorf("the progress bar's max is %q, want 300 (30 s in ticks of 100 ms)", max)
		}
		first := eval[float64](p, value)
		p.waitJS(fmt.Sprintf("the progress bar to move past %v", first), value+" > "+strconv.FormatFloat(first, 'f', -1, 64))
		p.screenshot("task")
	})
}

// TestCancelButton: the cancel button, confirmed, cancels a running task.
func TestCancelButton(t *testing.T) {
	onEngines(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		id := e.dispatch("", sleep(120, false))
		e.waitTask("", id, "running")

		p := e.newPage()
		p.open("#/tasks/" + id.String())
		p.waitFor("the running task's page", `#task-state[data-state="running"]`)
		p.follow("button#cancel-task", "the confirmation dialog", `document.querySelector('dialog#confirm-cancel')?.open === true`)
		p.click("dialog#confirm-cancel button#confirm-cancel-yes")
		p.waitJS("the page to show canceling or canceled",
			`['canceling', 'canceled'].includes(document.querySelector('#task-state')?.dataset.state)`)
		e.waitTask("", id, "canceled")
		p.waitFor("the page to show canceled", `#task-state[data-state="canceled"]`)
		if p.visible("dialog#confirm-cancel") {
			t.Error("the confirmation dialog is still open after the cancel")
		}
		if p.visible("button#cancel-task") {
			t.Error("a canceled task still shows its cancel button")
		}
	})
}

// TestTaskPageBlockedBy: the page of a waiting task shows what blocks
// it, with a link to the blocker, and follows it when the blocker ends.
func TestTaskPageBlockedBy(t *testing.T) {
	onEngines(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		blocker := e.dispatch("", gate("blocker", "repo:1"))
		waiter := e.dispatch("", apiv1.DispatchTask{Name: "stint.noop", ExclusiveResources: []string{"repo:1"}})
		e.waitTask("", blocker, "running")

		p := e.newPage()
		p.open("#/tasks/" + waiter.String())
		p.waitFor("the waiting task's page", `#task-state[data-state="waiting"]`)
		link := fmt.Sprintf(`#task-blocked-by li a[href="#/tasks/%s"]`, blocker)
		p.waitFor("the link to its blocker", link)
		p.follow(link, "the blocker's page", fmt.Sprintf(`location.hash === '#/tasks/%s'`, blocker))
		p.waitFor("the blocker's page, by the link", fmt.Sprintf(`section#task-page[data-task-id="%s"] #task-state[data-state="running"]`, blocker))
		eval[bool](p, `(history.back(), true)`)
		p.waitFor("the waiting task's page again", fmt.Sprintf(`section#task-page[data-task-id="%s"] %s`, waiter, link))

		e.open("blocker")
		p.waitFor("the waiter to complete on its page", `#task-state[data-state="completed"]`)
		p.waitJS("its blocker to be gone from its page", "!("+visibleJS(link)+")")
	})
}

// TestWorkersPage: the workers page shows the worker online, with the
// task it runs.
func TestWorkersPage(t *testing.T) {
	onEngines(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		id := e.dispatch("", gate("workers"))
		e.waitTask("", id, "running")

		p := e.newPage()
		p.open("#/workers")
		row := fmt.Sprintf(`section#workers-page table#workers-table tr[data-worker="%s"]`, e.worker)
		p.waitText("the worker's name", row+" td.worker-name", e.worker)
		p.waitText("the worker's status", row+" td.worker-status", "online")
		p.waitText("the worker's concurrency", row+" td.worker-concurrency", "4")
		p.waitFor("a link to the task it runs", fmt.Sprintf(`%s td.worker-tasks a[href="#/tasks/%s"]`, row, id))
		p.screenshot("workers")
	})
}

// TestGroupsPages: the groups page shows a group with its stacked bar,
// and the group's page its tasks.
func TestGroupsPages(t *testing.T) {
	onEngines(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		tasks := []apiv1.DispatchTask{
			{Name: "stint.noop"},
			sleep(0.1, true),
			sleep(120, false, "repo:9"),
			sleep(1, false, "repo:9"),
		}
		var ref apiv1.TaskGroupRef
		e.call("", "POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Description: "nightly sync", Tasks: &tasks}, 202, &ref)
		gid, err := apiv1.ParseTaskGroupRef(ref.TaskGroup)
		if err != nil {
			t.Fatal(err)
		}
		var group apiv1.TaskGroup
		e.call("", "GET", ref.TaskGroup, nil, 200, &group)
		var taskIDs []uuid.UUID
		for _, href := range *group.Tasks {
			id, err := apiv1.ParseTaskRef(href)
			if err != nil {
				t.Fatal(err)
			}
			taskIDs = append(taskIDs, id)
		}
		states := []string{"completed", "failed", "running", "waiting"}
		for i, state := range states {
			e.waitTask("", taskIDs[i], state)
		}

		p := e.newPage()
		p.open("#/groups")
		row := fmt.Sprintf(`section#groups-page table#groups-table tr[data-group-id="%s"]`, gid)
		p.waitText("the group's description", fmt.Sprintf(`%s td.group-description a[href="#/groups/%s"]`, row, gid), "nightly sync")
		p.waitText("the group's status", row+" td.group-status", "sealed")
		for _, state := range states {
			p.waitFor("the "+state+" segment of its stacked bar",
				fmt.Sprintf(`%s td.group-counts .stacked-bar span.seg[data-state="%s"]`, row, state))
		}
		p.screenshot("groups")

		p.follow(fmt.Sprintf(`%s td.group-description a`, row), "the group's page", fmt.Sprintf(`location.hash === '#/groups/%s'`, gid))
		p.waitFor("the group's page", fmt.Sprintf(`section#group-page[data-group-id="%s"] .stacked-bar`, gid))
		for i, state := range states {
			p.waitFor("its "+state+" task", fmt.Sprintf(`table#group-tasks tr[data-task-id="%s"][data-state="%s"]`, taskIDs[i], state))
		}
		if n := p.count("table#group-tasks tr[data-task-id]"); n != len(states) {
			t.Errorf("the group's table has %d tasks, want %d", n, len(states))
		}
		p.waitFor("its cancel button", "button#cancel-group")
		p.screenshot("group")
	})
}

// TestSignIn: with users, the UI asks for a token, refuses a bad one,
// and then shows a user its own tasks only.
func TestSignIn(t *testing.T) {
	onEngines(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		alice := e.addUser("alice", store.RoleUser)
		bob := e.addUser("bob", store.RoleUser)
		mine := []uuid.UUID{
			e.dispatch(alice, apiv1.DispatchTask{Name: "stint.noop"}),
			e.dispatch(alice, sleep(120, false)),
		}
		theirs := e.dispatch(bob, apiv1.DispatchTask{Name: "stint.noop"})
		e.waitTask(alice, mine[0], "completed")
		e.waitTask(alice, mine[1], "running")
		e.waitTask(bob, theirs, "completed")

		p := e.newPage()
		p.open("#/tasks")
		p.waitJS("the sign-in form", visibleJS("form#sign-in input#token"))
		p.screenshot("sign-in")

		unknown, err := auth.New() // well-formed, never stored
		if err != nil {
			t.Fatal(err)
		}
		p.do("typing an unknown token", chromedp.SendKeys(chromedp.CSS("form#sign-in input#token"), unknown.Secret))
		p.click(`form#sign-in button[type="submit"]`)
		p.waitJS("an error for the unknown token", `(document.querySelector('#sign-in-error')?.textContent ?? '').trim() !== ''`)
		if got := eval[string](p, `String(sessionStorage.getItem('stint.token'))`); got != "null" {
			t.Errorf("sessionStorage stint.token is %q after a refused token, want none", got)
		}

		eval[bool](p, `(document.querySelector('form#sign-in input#token').value = '', true)`)
		p.do("typing alice's token", chromedp.SendKeys(chromedp.CSS("form#sign-in input#token"), alice))
		p.click(`form#sign-in button[type="submit"]`)
		p.waitRow(mine[0], "stint.noop", "completed")
		p.waitRow(mine[1], "repo.sync", "running")
		p.waitJS("#viewer to name alice", `(document.querySelector('#viewer')?.textContent ?? '').includes('alice')`)
		p.waitText("the owner of her task", taskRow(mine[0], "")+" td.task-owner", "alice")
		if n := p.count("table#tasks-table tbody tr[data-task-id]"); n != len(mine) {
			t.Errorf("alice sees %d tasks, want her %d", n, len(mine))
		}
		if p.count(taskRow(theirs, "")) != 0 {
			t.Errorf("alice sees bob's task %s", theirs)
		}
		if got := eval[string](p, `String(sessionStorage.getItem('stint.token'))`); got != alice {
			t.Error("sessionStorage stint.token does not hold alice's token after she signed in")
		}

		p.follow(`header a[href="#/workers"]`, "the workers page", `location.hash === '#/workers'`)
		p.waitJS("a notice that only admins see workers", visibleJS("section#workers-page .notice"))
		if n := p.count("table#workers-table tr[data-worker]"); n != 0 {
			t.Errorf("alice, a user, sees %d workers", n)
		}
		p.follow(`header a[href="#/tasks"]`, "the tasks page", `location.hash.startsWith('#/tasks')`)
		p.waitRow(mine[0], "stint.noop", "completed")

		p.click("button#sign-out")
		p.waitJS("the sign-in form after signing out", visibleJS("form#sign-in input#token"))
		if got := eval[string](p, `String(sessionStorage.getItem('stint.token'))`); got != "null" {
			t.Error("sessionStorage stint.token still holds a token after signing out")
		}
	})
}

// TestCancelButtonAdminOnly: under the admin-only cancel policy a user
// sees no cancel button on its own running task; an admin does.
func TestCancelButtonAdminOnly(t *testing.T) {
	onEngines(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true, CancelPolicy: api.CancelAdminOnly})
		alice := e.addUser("alice", store.RoleUser)
		root := e.addUser("root", store.RoleAdmin)
		id := e.dispatch(alice, sleep(120, false))
		e.waitTask(alice, id, "running")

		p := e.newPage()
		p.signIn(alice)
		p.open("#/tasks/" + id.String())
		p.waitFor("alice's running task", `#task-state[data-state="running"]`)
		p.waitJS("#viewer to name alice", `(document.querySelector('#viewer')?.textContent ?? '').includes('alice')`)
		p.waitFor("the task's progress", "#task-progress progress")
		if p.visible("button#cancel-task") {
			t.Error("alice sees button#cancel-task under the admin-only cancel policy")
		}
		p.open("#/tasks")
		p.waitRow(id, "repo.sync", "running")
		if n := p.count(`#tasks-page button[id^="cancel"], #tasks-page button.cancel`); n != 0 {
			t.Errorf("alice sees %d cancel buttons on the tasks page under the admin-only policy", n)
		}

		p.signIn(root)
		p.open("#/tasks/" + id.String())
		p.waitFor("the task for the admin", `#task-state[data-state="running"]`)
		p.waitJS("#viewer to name root", `(document.querySelector('#viewer')?.textContent ?? '').includes('root')`)
		p.waitJS("the admin's cancel button", visibleJS("button#cancel-task"))
	})
}

// narrowWidth is the narrowest viewport the pages are checked at.
const narrowWidth = 400

// checkNarrow shows the page at narrowWidth and checks that nothing makes
// it scroll sideways, the elements the selector matches included (they
// end inside the viewport); it saves the view, scrolled to the element
// that show matches, as <engine>-<name>.png and returns to the laptop
// viewport.
func (p *page) checkNarrow(what, name, selector, show string) {
	p.t.Helper()
	p.do("narrow viewport", chromedp.EmulateViewport(narrowWidth, phoneHeight, chromedp.EmulateMobile, chromedp.EmulateScale(1)))
	p.waitJS("a layout at the narrow width", fmt.Sprintf(`innerWidth === %d && new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, narrowWidth))
	if w := eval[int](p, `document.documentElement.scrollWidth`); w > narrowWidth {
		p.t.Errorf("%s at %d px: the page is %d px wide, it scrolls sideways", what, narrowWidth, w)
	}
	wide := eval[[]string](p, fmt.Sprintf(`Array.from(document.querySelectorAll(%s))
		.filter(el => el.getBoundingClientRect().right > innerWidth + 0.5).map(el => el.id || el.className)`, jsString(selector)))
	if len(wide) > 0 {
		p.t.Errorf("%s at %d px: %v end past the viewport", what, narrowWidth, wide)
	}
	eval[bool](p, fmt.Sprintf(`(document.querySelector(%s)?.scrollIntoView({block: 'start'}), true)`, jsString(show)))
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	p.checkSize(name, shot, narrowWidth, phoneHeight)
	p.save(name, shot)
	p.do("laptop viewport", chromedp.EmulateViewport(laptopWidth, laptopHeight))
}

// textOf returns the trimmed text of the element the selector matches,
// "" for none.
func (p *page) textOf(selector string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(`(document.querySelector(%s)?.textContent ?? '').trim()`, jsString(selector)))
}

// TestScheduledTasks: a task dispatched for an hour ahead shows as
// scheduled with its due time, in the list (also at narrow width, and
// under the state filter), on its page and in its group's counts.
func TestScheduledTasks(t *testing.T) {
	onEngines(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		at := apiv1.Time{Time: time.Now().Add(time.Hour)}
		later := e.dispatch("", apiv1.DispatchTask{Name: "stint.noop", ScheduledAt: &at, UniqueKey: new("nightly")})
		now := e.dispatch("", apiv1.DispatchTask{Name: "stint.noop"})
		e.waitTask("", now, "completed")
		if got := e.task("", later); got.State != "scheduled" {
			t.Fatalf("the task dispatched for an hour ahead is %s, want scheduled", got.State)
		}

		p := e.newPage()
		p.open("#/tasks")
		p.waitRow(later, "stint.noop", "scheduled")
		p.waitRow(now, "stint.noop", "completed")
		due := regexp.MustCompile(`^due in 59 min \d+ s$`)
		if got := p.textOf(taskRow(later, "scheduled") + " td.task-finished"); !due.MatchString(got) {
			t.Errorf("the scheduled task's Finished cell reads %q, want %s", got, due)
		}
		if got := p.textOf(taskRow(now, "completed") + " td.task-finished"); strings.Contains(got, "due") {
			t.Errorf("the completed task's Finished cell reads %q, want no due time", got)
		}
		if p.visible(taskRow(later, "") + " .task-due-narrow") {
			t.Error("the due time under Progress shows at laptop width too, beside the one under Finished")
		}
		p.screenshot("tasks-scheduled")
		p.do("narrow viewport", chromedp.EmulateViewport(narrowWidth, phoneHeight, chromedp.EmulateMobile, chromedp.EmulateScale(1)))
		p.waitJS("the due time under Progress at narrow width", visibleJS(taskRow(later, "")+" td.task-progress .task-due-narrow"))
		if got := p.textOf(taskRow(later, "") + " td.task-progress"); !due.MatchString(got) {
			t.Errorf("at narrow width the scheduled task's Progress cell reads %q, want %s", got, due)
		}
		p.checkNarrow("the tasks page", "tasks-scheduled-narrow", "#tasks-page, #tasks-page .task-due", "#tasks-page")

		p.open("#/tasks?state=scheduled")
		p.waitJS("only the scheduled task listed", fmt.Sprintf(`document.querySelectorAll('table#tasks-table tbody tr[data-task-id]').length === 1 &&
			document.querySelector(%s) !== null`, jsString(taskRow(later, "scheduled"))))
		if got := eval[string](p, `document.querySelector('select#filter-state').value`); got != "scheduled" {
			t.Errorf("select#filter-state shows %q for #/tasks?state=scheduled, want scheduled", got)
		}

		p.open("#/tasks/" + later.String())
		p.waitFor("the scheduled task's page", `#task-state[data-state="scheduled"]`)
		p.waitText("its state", "#task-state", "scheduled")
		p.waitFor("its scheduled time", "#task-scheduled time")
		if got := p.textOf("#task-scheduled"); !regexp.MustCompile(`\(in 59 min \d+ s\)$`).MatchString(got) {
			t.Errorf("#task-scheduled reads %q, want the time and (in 59 min … s)", got)
		}
		p.waitText("its unique key", "#task-unique-key", "nightly")
		if p.count("#task-attempts") != 0 {
			t.Error("a task without retries or attempts shows an Attempts section")
		}
		p.waitJS("its cancel button", visibleJS("button#cancel-task"))
		if p.visible("button#retry-task") {
			t.Error("a scheduled task shows a Retry button")
		}
		p.checkNarrow("the scheduled task's page", "task-scheduled-narrow", "#task-page, #task-facts", "#task-page")

		tasks := []apiv1.DispatchTask{{Name: "stint.noop", ScheduledAt: &at}, {Name: "stint.noop"}}
		var ref apiv1.TaskGroupRef
		e.call("", "POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Description: "later", Tasks: &tasks}, http.StatusAccepted, &ref)
		gid, err := apiv1.ParseTaskGroupRef(ref.TaskGroup)
		if err != nil {
			t.Fatal(err)
		}
		p.open("#/groups/" + gid.String())
		p.waitFor("the scheduled segment of the group's bar", `#group-bar .stacked-bar span.seg[data-state="scheduled"]`)
		p.waitText("the group's count of scheduled tasks", `#group-counts li[data-state="scheduled"] .count`, "1")
		if got := eval[string](p, `getComputedStyle(document.querySelector('#group-bar span.seg[data-state="scheduled"]')).backgroundColor`); got == "rgba(0, 0, 0, 0)" || got == "" {
			t.Errorf("the scheduled segment has no color (%q)", got)
		}
	})
}

// TestRetriedTask: a failing task with a retry policy of two attempts
// ends failed with both attempts on its page, each with its own error;
// its Retry button makes a new task, whose page links back to it.
func TestRetriedTask(t *testing.T) {
	onEngines(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		body := failing("the remote hung up")
		body.Retry = &apiv1.Retry{MaxAttempts: 2, InitialDelay: "100ms"}
		id := e.dispatch("", body)
		task := e.waitTask("", id, "failed")
		if len(task.Attempts) != 2 {
			t.Fatalf("the failed task has %d attempts in the API, want 2", len(task.Attempts))
		}

		p := e.newPage()
		p.open("#/tasks/" + id.String())
		p.waitFor("the failed task's page", `#task-state[data-state="failed"]`)
		p.waitText("its retry policy", "#task-retry", "up to 2 attempts; waits 100ms, ×2 each time, at most 1h")
		p.waitText("the title of its attempts", "#task-attempts-title", "Attempts (2 of at most 2)")
		if n := p.count("#task-attempts li.attempt"); n != 2 {
			t.Errorf("the page lists %d attempts, want 2", n)
		}
		for i, a := range task.Attempts {
			item := fmt.Sprintf(`#task-attempts li.attempt[data-attempt="%d"]`, i+1)
			p.waitText(fmt.Sprintf("attempt %d's state", i+1), item+" .state", "failed")
			if got := p.textOf(item + " .attempt-number"); got != fmt.Sprintf("#%d", i+1) {
				t.Errorf("attempt %d is numbered %q", i+1, got)
			}
			if got := p.textOf(item + " .attempt-worker"); got != e.worker {
				t.Errorf("attempt %d ran on %q, want %s", i+1, got, e.worker)
			}
			want := fmt.Sprintf("the remote hung up (run %d)", i+1)
			if got := p.textOf(item + " .error-description"); got != want {
				t.Errorf("attempt %d's error reads %q, want %q", i+1, got, want)
			}
			if got := p.textOf(item + " .error-kind"); a.Error == nil || got != a.Error.Kind || got == "" {
				t.Errorf("attempt %d's error kind reads %q, want the API's %+v", i+1, got, a.Error)
			}
			if got := p.textOf(item + " .attempt-ran"); !strings.HasPrefix(got, "ran ") {
				t.Errorf("attempt %d's duration reads %q, want ran …", i+1, got)
			}
			if p.count(item+" .attempt-times time") != 2 {
				t.Errorf("attempt %d does not show when it started and finished", i+1)
			}
		}
		p.screenshot("task-attempts")
		p.checkNarrow("the retried task's page", "task-attempts-narrow", "#task-page, #task-attempts, #task-attempts li, #task-facts, button#retry-task", "#task-attempts")

		p.click("button#retry-task")
		p.waitJS("the page of the new task", fmt.Sprintf(`/^#\/tasks\/[0-9a-f-]{36}$/.test(location.hash) && location.hash !== '#/tasks/%s'`, id))
		again, err := uuid.Parse(strings.TrimPrefix(eval[string](p, `location.hash`), "#/tasks/"))
		if err != nil {
			t.Fatal(err)
		}
		if got := e.task("", again); got.RetryOf == nil || *got.RetryOf != apiv1.TaskHref(id) {
			t.Errorf("the new task's retry_of is %v, want %s", got.RetryOf, apiv1.TaskHref(id))
		}
		link := fmt.Sprintf(`#task-retry-of a[href="#/tasks/%s"]`, id)
		p.waitFor("its link to the task it retries", fmt.Sprintf(`section#task-page[data-task-id="%s"] %s`, again, link))
		p.waitJS("the link to name test.fail", fmt.Sprintf(`(document.querySelector(%s)?.textContent ?? '').startsWith('test.fail ')`, jsString(link)))
		p.follow(link, "the first task's page", fmt.Sprintf(`location.hash === '#/tasks/%s'`, id))
		p.waitFor("the first task's page again", fmt.Sprintf(`section#task-page[data-task-id="%s"] #task-state[data-state="failed"]`, id))
	})
}

// TestRetryButton: under the admin-only cancel policy a user sees no
// Retry button on her own failed task; an admin does, and the API's
// refusal of the retry (the task's group is sealed) shows as the other
// refused actions do, in the flash.
func TestRetryButton(t *testing.T) {
	onEngines(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true, CancelPolicy: api.CancelAdminOnly})
		alice := e.addUser("alice", store.RoleUser)
		root := e.addUser("root", store.RoleAdmin)
		tasks := []apiv1.DispatchTask{failing("no")}
		var ref apiv1.TaskGroupRef
		e.call(alice, "POST", "/api/v1/task-groups", apiv1.CreateTaskGroup{Description: "sealed", Tasks: &tasks}, http.StatusAccepted, &ref)
		var group apiv1.TaskGroup
		e.call(alice, "GET", ref.TaskGroup, nil, http.StatusOK, &group)
		id, err := apiv1.ParseTaskRef((*group.Tasks)[0])
		if err != nil {
			t.Fatal(err)
		}
		e.waitTask(alice, id, "failed")

		p := e.newPage()
		p.signIn(alice)
		p.open("#/tasks/" + id.String())
		p.waitFor("alice's failed task", `#task-state[data-state="failed"]`)
		p.waitJS("#viewer to name alice", `(document.querySelector('#viewer')?.textContent ?? '').includes('alice')`)
		p.waitFor("its group", "#task-group a")
		if p.visible("button#retry-task") {
			t.Error("alice sees button#retry-task under the admin-only cancel policy")
		}

		p.signIn(root)
		p.open("#/tasks/" + id.String())
		p.waitJS("the admin's Retry button", visibleJS("button#retry-task"))
		if p.count("#task-attempts") != 0 {
			t.Error("a task run once, without a retry policy, shows an Attempts section")
		}
		p.click("button#retry-task")
		p.waitJS("the refusal in the flash", `!document.querySelector('#flash-wrap').hidden &&
			document.querySelector('#flash').textContent.startsWith('Could not retry the task: task_group: ')`)
		if got := eval[string](p, `location.hash`); got != "#/tasks/"+id.String() {
			t.Errorf("after a refused retry the page moved to %s", got)
		}
		p.waitJS("the Retry button enabled again", `document.querySelector('button#retry-task')?.disabled === false`)
	})
}
