// groups.js: the task groups (#/groups) and one group (#/groups/<id>),
// its counts, its tasks, live from /events?task_group=<id>.

import * as api from './api.js';
import { h, STATES, INCOMPLETE, timeEl, stackedBar, throttled, reconcile, messageRow, pager, idOf } from './dom.js';
import { taskTableHead, taskRow, updateTaskRow, applyEvent, LiveTasks, TASK_COLUMNS } from './tasks.js';

const GROUPS_PAGE_SIZE = 20;
const GROUP_TASKS_PAGE_SIZE = 50;

// groupStatus: "done" (sealed and every task final), "sealed" (no more
// tasks may be dispatched into it) or "open".
export function groupStatus(g) {
  if (g.done) return 'done';
  return g.all_tasks_dispatched ? 'sealed' : 'open';
}

const STATUS_HELP = {
  done: 'Sealed, and every task in it has ended',
  sealed: 'No more tasks will be dispatched into it; some are still going',
  open: 'More tasks may still be dispatched into it',
};

function statusBadge(status, attrs = {}) {
  return h('span', { ...attrs, class: `group-status-badge status-${status}`, title: STATUS_HELP[status] }, status);
}

function describe(g) {
  return g.description || `Group ${g.id.slice(-8)}`;
}

function offsetOf(params) {
  const n = Number.parseInt(params.get('offset') || '0', 10);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

function countsCell(g) {
  const total = g.counts.total || 0;
  return [stackedBar(g.counts), h('span', { class: 'group-total' }, `${total} ${total === 1 ? 'task' : 'tasks'}`)];
}

function groupRow(g) {
  const tr = h('tr', { 'data-group-id': g.id },
    h('td', { class: 'group-description' }, h('a', { href: `#/groups/${g.id}`, title: g.id }, describe(g))),
    h('td', { class: 'group-status' }),
    h('td', { class: 'group-counts' }),
    h('td', { class: 'group-owner' }),
    h('td', { class: 'group-created' }));
  updateGroupRow(tr, g);
  return tr;
}

function updateGroupRow(tr, g) {
  const cell = (cls) => tr.querySelector(`td.${cls}`);
  const key = JSON.stringify([g.description, groupStatus(g), g.counts, g.owner, g.created_at]);
  if (tr.dataset.key === key) return;
  tr.dataset.key = key;
  cell('group-description').firstChild.textContent = describe(g);
  cell('group-status').replaceChildren(statusBadge(groupStatus(g)));
  cell('group-counts').replaceChildren(...countsCell(g));
  cell('group-owner').replaceChildren(g.owner || h('span', { class: 'none', title: 'open mode' }, '—'));
  cell('group-created').replaceChildren(timeEl(g.created_at));
}

export function groupsPage(ctx, route) {
  let offset = offsetOf(route.params);
  let rows = new Map();
  let seq = 0;
  let stream = null;
  const aborter = new AbortController();
  const reload = throttled(() => load(), 500);

  const tbody = h('tbody', {}, messageRow(5, 'Loading groups…', 'loading'));
  const table = h('table', { id: 'groups-table', class: 'groups' },
    h('caption', { class: 'visually-hidden' }, 'Task groups, newest first'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', class: 'group-description' }, 'Description'),
      h('th', { scope: 'col', class: 'group-status' }, 'Status'),
      h('th', { scope: 'col', class: 'group-counts' }, 'Tasks'),
      h('th', { scope: 'col', class: 'group-owner' }, 'Owner'),
      h('th', { scope: 'col', class: 'group-created' }, 'Created'))),
    tbody);
  const pages = pager({ prev: 'groups-prev-page', next: 'groups-next-page', info: 'groups-page-info' }, 'Pages of groups',
    (o) => { location.hash = o ? `#/groups?offset=${o}` : '#/groups'; });
  const status = h('p', { class: 'load-error', role: 'status' });

  async function load() {
    const mine = ++seq;
    try {
      const page = await api.get(`/task-groups${api.query({ limit: GROUPS_PAGE_SIZE, offset })}`, { signal: aborter.signal });
      if (mine !== seq) return;
      status.textContent = '';
      if (!page.results.length) {
        rows = new Map();
        tbody.replaceChildren(messageRow(5, 'No groups', 'empty'));
      } else {
        rows = reconcile(tbody, page.results, rows, (g) => g.id, groupRow, updateGroupRow);
      }
      pages.set(offset, GROUPS_PAGE_SIZE, page.results.length, page.count, page.next !== null);
    } catch (err) {
      if (api.isAbort(err) || mine !== seq || err.status === 401) return;
      status.textContent = `Could not read the groups: ${err.detail || err.message}`;
    }
  }

  function onEvent(ev) {
    if (!ev.task_group) return;
    if (rows.has(idOf(ev.task_group)) || offset === 0) reload();
  }

  return {
    mount(root) {
      root.append(h('section', { id: 'groups-page', class: 'page', 'aria-labelledby': 'groups-title' },
        h('div', { class: 'page-head' }, h('h1', { id: 'groups-title' }, 'Groups')),
        status, h('div', { class: 'table-wrap' }, table), pages.el));
      stream = api.follow('', { onEvent, onConnected: reload });
      load();
    },
    update(r) {
      offset = offsetOf(r.params);
      load();
    },
    unmount() {
      aborter.abort();
      reload.cancel();
      if (stream) stream.stop();
    },
  };
}

export function groupPage(ctx, route) {
  const id = route.id;
  let offset = offsetOf(route.params);
  let group = null;
  let rows = new Map();
  let seq = 0;
  let stream = null;
  let gone = false;
  const live = new LiveTasks();
  const aborter = new AbortController();
  const reload = throttled(() => load(), 500);

  const head = h('div', { class: 'page-head' }, h('h1', { id: 'group-description' }, 'Group'), h('p', { class: 'loading' }, 'Loading…'));
  const summary = h('div', { class: 'group-summary' });
  const tbody = h('tbody', {}, messageRow(TASK_COLUMNS, 'Loading tasks…', 'loading'));
  const table = h('table', { id: 'group-tasks', class: 'tasks' }, taskTableHead('Tasks of the group, in dispatch order'), tbody);
  const pages = pager({ prev: 'group-prev-page', next: 'group-next-page', info: 'group-page-info' }, 'Pages of the group\'s tasks',
    (o) => { location.hash = o ? `#/groups/${id}?offset=${o}` : `#/groups/${id}`; });
  const root = h('section', { id: 'group-page', class: 'page', 'data-group-id': id, 'aria-labelledby': 'group-description' },
    head, summary,
    h('section', { class: 'card', 'aria-labelledby': 'group-tasks-title' },
      h('h2', { id: 'group-tasks-title' }, 'Tasks'),
      h('div', { class: 'table-wrap' }, table), pages.el));

  let headKey = null;
  let summaryKey = null;

  function render() {
    const g = group;
    const st = groupStatus(g);
    const canCancel = !g.done && ctx.mayCancel(g.owner);
    ctx.setTitle(describe(g));
    const hk = JSON.stringify([describe(g), st, canCancel]);
    if (hk !== headKey) {
      headKey = hk;
      head.replaceChildren(
        h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/groups' }, 'Groups'), ' / ', h('span', { class: 'mono' }, id)),
        h('div', { class: 'title-row' },
          h('h1', { id: 'group-description' }, describe(g)),
          statusBadge(st, { id: 'group-status' }),
          canCancel ? h('button', { type: 'button', id: 'cancel-group', class: 'danger', onclick: cancel }, 'Cancel group') : null));
    }
    const sk = JSON.stringify([g.counts, g.owner, g.created_at]);
    if (sk !== summaryKey) {
      summaryKey = sk;
      summary.replaceChildren(h('section', { class: 'card', 'aria-labelledby': 'group-counts-title' },
        h('h2', { id: 'group-counts-title' }, `Tasks by state (${g.counts.total} in all)`),
        h('div', { id: 'group-bar' }, stackedBar(g.counts)),
        h('ul', { id: 'group-counts', class: 'counts' }, STATES.map((s) => h('li', { 'data-state': s, class: g.counts[s] ? '' : 'zero' },
          h('span', { class: 'count' }, String(g.counts[s] || 0)), ' ', s))),
        h('dl', { class: 'facts' },
          h('dt', {}, 'Owner'), h('dd', { id: 'group-owner' }, g.owner || h('span', { class: 'none' }, '— (open mode)')),
          h('dt', {}, 'Created'), h('dd', { id: 'group-created' }, timeEl(g.created_at, 'both')),
          h('dt', {}, 'Id'), h('dd', {}, h('span', { class: 'mono' }, g.id)))));
    }
  }

  async function load() {
    const mine = ++seq;
    let g;
    let page;
    try {
      [g, page] = await Promise.all([
        api.get(`/task-groups/${encodeURIComponent(id)}`, { signal: aborter.signal }),
        api.get(`/tasks${api.query({ task_group: id, ordering: 'created_at', limit: GROUP_TASKS_PAGE_SIZE, offset })}`, { signal: aborter.signal }),
      ]);
    } catch (err) {
      if (api.isAbort(err) || mine !== seq || err.status === 401) return;
      if (err.status === 404 || err.status === 400) {
        notFound(err);
        return;
      }
      ctx.flash(`Could not read the group: ${err.detail || err.message}`);
      return;
    }
    if (mine !== seq || gone) return;
    group = g;
    render();
    const tasks = page.results.map((t) => live.overlay(t));
    if (!tasks.length) {
      rows = new Map();
      tbody.replaceChildren(messageRow(TASK_COLUMNS, 'No tasks', 'empty'));
    } else {
      rows = reconcile(tbody, tasks, rows, (t) => t.id, taskRow, updateTaskRow);
    }
    pages.set(offset, GROUP_TASKS_PAGE_SIZE, tasks.length, page.count, page.next !== null);
  }

  function onEvent(ev) {
    live.add(ev);
    const tr = rows.get(ev.id);
    if (tr) {
      const before = tr.dataset.state;
      applyEvent(tr, ev);
      if (before === ev.state) return;
      if (group) {
        // Move the task between counts at once; the read that follows settles them.
        const counts = { ...group.counts };
        if (counts[before] > 0) counts[before] -= 1;
        counts[ev.state] = (counts[ev.state] || 0) + 1;
        group = { ...group, counts };
        render();
      }
    }
    reload();
  }

  function notFound(err) {
    gone = true;
    if (stream) stream.stop();
    root.replaceChildren(h('div', { class: 'page-head' }, h('h1', { id: 'group-description' }, 'No such group')),
      h('p', { class: 'notice' }, err.detail), h('p', {}, h('a', { href: '#/groups' }, 'All groups')));
  }

  async function cancel() {
    const g = group;
    const incomplete = [...INCOMPLETE].reduce((n, s) => n + (g.counts[s] || 0), 0);
    const yes = await ctx.confirm({
      title: 'Cancel this group?',
      text: `“${describe(g)}” will be sealed and its ${incomplete} incomplete ${incomplete === 1 ? 'task' : 'tasks'} canceled.`,
      yes: 'Cancel group',
      no: 'Keep it',
    });
    if (!yes || gone) return;
    const button = document.getElementById('cancel-group');
    if (button) button.disabled = true;
    try {
      group = await api.patch(`/task-groups/${encodeURIComponent(id)}`, { state: 'canceled' }, { signal: aborter.signal });
      ctx.clearFlash();
      render();
    } catch (err) {
      if (api.isAbort(err) || err.status === 401) return;
      ctx.flash(`Could not cancel the group: ${err.detail || err.message}`);
      if (button) button.disabled = false;
    }
    reload();
  }

  return {
    mount(parent) {
      parent.append(root);
      stream = api.follow(api.query({ task_group: id }), { onEvent, onConnected: reload });
      load();
    },
    update(r) {
      offset = offsetOf(r.params);
      load();
    },
    unmount() {
      gone = true;
      aborter.abort();
      reload.cancel();
      if (stream) stream.stop();
    },
  };
}
