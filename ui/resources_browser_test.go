package ui_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/enginetest"
)

// setCapacity gives a resource a capacity through the API, as an admin
// (the token's user; "" in open mode, where anyone is one).
func (e *env) setCapacity(token, name string, n int) {
	e.t.Helper()
	e.call(token, "PUT", apiv1.ResourceHref(name), apiv1.ResourceCapacity{Capacity: &n}, http.StatusOK, nil)
}

// resource reads a resource through the API.
func (e *env) resource(token, name string) apiv1.Resource {
	e.t.Helper()
	var r apiv1.Resource
	e.call(token, "GET", apiv1.ResourceHref(name), nil, http.StatusOK, &r)
	return r
}

// sharedGate returns the body of a dispatch of test.gate on gate that
// holds the resources shared.
func sharedGate(name string, shared ...string) apiv1.DispatchTask {
	d := gate(name)
	d.SharedResources = shared
	return d
}

// resourceRow is the selector of a resource's row on the resources table.
func resourceRow(name string) string {
	return fmt.Sprintf(`table#resources-table tbody tr[data-resource=%s]`, jsString(name))
}

// waitResourceRow waits until the resources table shows the resource
// with holders of capacity ("" for none) and waiting tasks, in its cells
// too.
func (p *page) waitResourceRow(name string, holders int, capacity string, waiting int) {
	p.t.Helper()
	row := resourceRow(name)
	p.waitFor(fmt.Sprintf("the row of %s, %d held of %q, %d waiting", name, holders, capacity, waiting),
		fmt.Sprintf(`%s[data-holders="%d"][data-capacity="%s"][data-waiting="%d"]`, row, holders, capacity, waiting))
	text := fmt.Sprint(holders)
	if capacity != "" {
		text = fmt.Sprintf("%d / %s", holders, capacity)
	}
	p.waitText("its holders", row+" td.resource-holders .resource-holders-count", text)
	p.waitText("its queue", row+" td.resource-waiting .resource-waiting-count", fmt.Sprint(waiting))
}

// waitResources waits until the resources table shows these resources,
// in this order.
func (p *page) waitResources(what string, names ...string) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf("%s: the resources table to list %q", what, names), fmt.Sprintf(
		`JSON.stringify(Array.from(document.querySelectorAll('table#resources-table tbody tr[data-resource]')).map(tr => tr.dataset.resource)) === %s`,
		jsString(string(mustJSON(names)))))
}

// taskLinks returns the ids the links of a list of tasks point to, in
// order.
func (p *page) taskLinks(selector string) []string {
	p.t.Helper()
	return eval[[]string](p, fmt.Sprintf(`Array.from(document.querySelectorAll(%s)).map(a => a.getAttribute('href').replace('#/tasks/', ''))`,
		jsString(selector)))
}

func ids(list ...uuid.UUID) []string {
	out := make([]string, len(list))
	for i, id := range list {
		out[i] = id.String()
	}
	return out
}

// TestResourcesPage: the resources page lists resources, the longest
// queue first, each with its holders against its capacity and its queue;
// it follows tasks that end and tasks dispatched while it is open, in
// place; its filters narrow it; it fits a narrow screen. A resource's page
// lists its holders and its waiting tasks in queue order, live, and a
// waiting task's page says that its resource is full and links to it.
func TestResourcesPage(t *testing.T) {
	onEngines(t, func(t *testing.T, eng enginetest.Engine) {
		e := newEnv(t, eng, api.Config{AllowOpen: true})
		const pool, repo, idle = "pool/db", "repo:x", "idle:cap"
		e.setCapacity("", pool, 2)
		e.setCapacity("", idle, 5)
		var pooled []uuid.UUID
		for i := range 4 {
			pooled = append(pooled, e.dispatch("", sharedGate(fmt.Sprintf("pool-%d", i), pool)))
		}
		e.waitTask("", pooled[0], "running")
		e.waitTask("", pooled[1], "running")
		holder := e.dispatch("", gate("repo", repo))
		queued := e.dispatch("", apiv1.DispatchTask{Name: "stint.noop", ExclusiveResources: []string{repo}})
		e.waitTask("", holder, "running")
		for _, id := range append([]uuid.UUID{queued}, pooled[2:]...) {
			if got := e.task("", id); got.State != "waiting" {
				t.Fatalf("task %s is %s, want waiting", id, got.State)
			}
		}
		var reasons []string
		for _, b := range *e.task("", pooled[2]).BlockedBy {
			reasons = append(reasons, b.Reason)
		}
		if !slices.Contains(reasons, "resource full (2 of 2)") {
			t.Fatalf("the API gives the third task on the pool the reasons %q, want resource full (2 of 2)", reasons)
		}

		p := e.newPage()
		p.open("#/tasks")
		p.follow(`header nav a[href="#/resources"]`, "the resources page", `location.hash === '#/resources'`)
		p.waitFor("the resources page", "section#resources-page table#resources-table")
		p.waitFor("the Resources tab as the current page", `header nav a[href="#/resources"][aria-current="page"]`)
		p.waitResourceRow(pool, 2, "2", 2)
		p.waitResourceRow(repo, 1, "", 1)
		p.waitResourceRow(idle, 0, "5", 0)
		p.waitResources("the longest queue first", pool, repo, idle)

		fill := func(name string) string {
			return eval[string](p, fmt.Sprintf(`document.querySelector(%s)?.style.width ?? ''`, jsString(resourceRow(name)+" .resource-bar .fill")))
		}
		if got := fill(pool); got != "100%" {
			t.Errorf("the pool's bar is filled %q, want 100%%", got)
		}
		if p.count(resourceRow(pool)+" .resource-bar[data-full]") != 1 {
			t.Error("the full pool's bar is not marked full")
		}
		if got := fill(idle); got != "0%" {
			t.Errorf("the idle resource's bar is filled %q, want 0%%", got)
		}
		if p.count(resourceRow(repo)+" .resource-bar") != 0 {
			t.Error("a resource without a capacity shows a bar")
		}
		if !p.visible(resourceRow(repo) + " .badge.exclusive") {
			t.Error("the resource held exclusively is not marked exclusive")
		}
		if p.count(resourceRow(pool)+" .badge.exclusive") != 0 {
			t.Error("the pool, held shared, is marked exclusive")
		}
		p.waitFor("the age of the pool's oldest waiting task", resourceRow(pool)+" td.resource-oldest time")
		if got := p.textOf(resourceRow(idle) + " td.resource-oldest"); got != "—" {
			t.Errorf("the idle resource's oldest wait reads %q, want —", got)
		}
		p.screenshot("resources")
		eval[bool](p, `(window.stintTestMarker = 'still here', true)`)

		// Live: a holder ends and the next task takes its place; more are
		// dispatched; the exclusive holder ends and its resource is free.
		e.open("pool-0")
		p.waitResourceRow(pool, 2, "2", 1)
		more := []uuid.UUID{e.dispatch("", sharedGate("pool-4", pool)), e.dispatch("", sharedGate("pool-5", pool))}
		pooled = append(pooled, more...)
		p.waitResourceRow(pool, 2, "2", 3)
		e.open("repo")
		e.waitTask("", queued, "completed")
		p.waitResources("the free resource gone", pool, idle)
		e.open("pool-1")
		p.waitResourceRow(pool, 2, "2", 2)
		if got := eval[string](p, `String(window.stintTestMarker)`); got != "still here" {
			t.Errorf("window.stintTestMarker is %q: the page was reloaded, want it updated in place", got)
		}

		// The filters, from the form and from the route.
		p.click("input#filter-busy")
		p.waitJS("the route to carry busy=1", `/[?&]busy=1(&|$)/.test(location.hash)`)
		p.waitResources("busy only", pool)
		p.click("input#filter-busy")
		p.waitResources("all again", pool, idle)
		p.do("typing a name filter", chromedp.SendKeys(chromedp.CSS("input#filter-resource-name"), "cap"))
		p.waitJS("the route to carry name=cap", `/[?&]name=cap(&|$)/.test(location.hash)`)
		p.waitResources("the name filter", idle)
		p.open("#/resources?busy=1&name=idle")
		p.waitText("no resource for both filters", "table#resources-table tbody tr.empty", "No resources match")
		if !eval[bool](p, `document.querySelector('input#filter-busy').checked && document.querySelector('input#filter-resource-name').value === 'idle'`) {
			t.Error("the filters do not show the route's busy=1&name=idle")
		}

		// At narrow width: nothing scrolls sideways, and the oldest wait
		// shows in the queue's cell.
		p.open("#/resources")
		p.waitResourceRow(pool, 2, "2", 2)
		p.do("narrow viewport", chromedp.EmulateViewport(narrowWidth, phoneHeight, chromedp.EmulateMobile, chromedp.EmulateScale(1)))
		p.waitJS("the oldest wait under the queue at narrow width", visibleJS(resourceRow(pool)+" td.resource-waiting .resource-oldest-narrow time"))
		p.checkNarrow("the resources page", "resources-narrow",
			"#resources-page, #resources-table, #resource-filters, .site-header nav, .site-header .who", "#resources-page")

		// One resource: its holders, then its waiting tasks in queue order.
		link := resourceRow(pool) + " td.resource-name a"
		want := "#/resources/" + strings.ReplaceAll(pool, "/", "%2F")
		p.follow(link, "the pool's page", fmt.Sprintf(`location.hash === %s`, jsString(want)))
		page := fmt.Sprintf(`section#resource-page[data-resource=%s]`, jsString(pool))
		p.waitFor("the pool's page", page+" #resource-facts dl")
		p.waitText("its name", "h1#resource-name", pool)
		p.waitText("its capacity", "#resource-capacity", "2")
		p.waitText("its holders", "#resource-holders-count .resource-holders-count", "2 / 2")
		p.waitText("its queue's length", "#resource-waiting", "2")
		p.waitFor("the age of its oldest waiting task", "#resource-oldest time")
		res := e.resource("", pool)
		if res.WaitingTasks == nil {
			t.Fatal("GET /resources/{name} has no waiting_tasks")
		}
		holders, queue := ids(pooled[2], pooled[3]), ids(pooled[4], pooled[5])
		if want := []string{apiv1.TaskHref(pooled[2]), apiv1.TaskHref(pooled[3])}; !slices.Equal(res.Holders.Tasks, want) {
			t.Fatalf("the API's holders are %q, want %q", res.Holders.Tasks, want)
		}
		if want := []string{apiv1.TaskHref(pooled[4]), apiv1.TaskHref(pooled[5])}; !slices.Equal(*res.WaitingTasks, want) {
			t.Fatalf("the API's waiting tasks are %q, want %q", *res.WaitingTasks, want)
		}
		p.waitJS("links to its two holders", `document.querySelectorAll('#resource-holder-list li a[href^="#/tasks/"]').length === 2`)
		if got := p.taskLinks("#resource-holder-list li a"); !slices.Equal(got, holders) {
			t.Errorf("the holders link to %q, want %q", got, holders)
		}
		p.waitJS("links to its two waiting tasks", `document.querySelectorAll('#resource-waiting-list li a[href^="#/tasks/"]').length === 2`)
		if got := p.taskLinks("#resource-waiting-list li a"); !slices.Equal(got, queue) {
			t.Errorf("the waiting tasks link to %q, want %q in queue order", got, queue)
		}
		p.waitJS("the links to name the tasks", `Array.from(document.querySelectorAll('#resource-page li a')).every(a => a.textContent.startsWith('test.gate '))`)
		p.screenshot("resource")

		// Live on its page too.
		e.open("pool-2")
		p.waitText("its queue's length after a holder ended", "#resource-waiting", "1")
		p.waitJS("the next task among its holders", fmt.Sprintf(`JSON.stringify(Array.from(document.querySelectorAll('#resource-holder-list li a')).map(a => a.getAttribute('href'))) === %s`,
			jsString(string(mustJSON([]string{"#/tasks/" + pooled[3].String(), "#/tasks/" + pooled[4].String()})))))
		if got := p.taskLinks("#resource-waiting-list li a"); !slices.Equal(got, ids(pooled[5])) {
			t.Errorf("the waiting tasks link to %q, want %q", got, ids(pooled[5]))
		}
		p.checkNarrow("the resource's page", "resource-narrow",
			"#resource-page, #resource-facts, #resource-holders, #resource-waiting-tasks, #resource-holder-list li", "#resource-page")

		// A waiting task's page: why it waits, and a link to its resource.
		last := pooled[5]
		p.open("#/tasks/" + last.String())
		p.waitFor("the waiting task's page", `#task-state[data-state="waiting"]`)
		p.waitText("the reason it waits", "#task-blocked-by li .blocker-reason", "resource full (2 of 2)")
		p.waitFor("its blocker's resource, linked", fmt.Sprintf(`#task-blocked-by li a.resource-link[href=%s]`, jsString(want)))
		shared := fmt.Sprintf(`#task-resources .shared li a.resource-link[href=%s]`, jsString(want))
		p.waitText("its shared resource, linked", shared, pool)
		p.screenshot("task-resource-full")
		p.follow(shared, "the pool's page from the task's", fmt.Sprintf(`location.hash === %s`, jsString(want)))
		p.waitFor("the pool's page again", page+" #resource-waiting-list li a[href=\"#/tasks/"+last.String()+"\"]")
	})
}
