// tasks.js: the tasks page (#/tasks?filters) and the task rows that the
// group page shares.

import * as api from './api.js';
import {
  h, STATES, FINAL, stateBadge, timeEl, progressEl, progressText, throttled, debounced, reconcile,
  messageRow, pager, newer, idOf, shortId,
} from './dom.js';

export const PAGE_SIZE = 20;
export const TASK_COLUMNS = 7;

const ORDERINGS = [
  ['-created_at', 'Newest first'],
  ['created_at', 'Oldest first'],
  ['-started_at', 'Started, newest first'],
  ['started_at', 'Started, oldest first'],
  ['-finished_at', 'Finished, newest first'],
  ['finished_at', 'Finished, oldest first'],
  ['scheduled_at', 'Due, soonest first'],
  ['-scheduled_at', 'Due, latest first'],
];

// --- Rows, shared with the group page ---

export function taskTableHead(caption) {
  return [
    h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', class: 'task-name' }, 'Name'),
      h('th', { scope: 'col', class: 'task-state' }, 'State'),
      h('th', { scope: 'col', class: 'task-progress' }, 'Progress'),
      h('th', { scope: 'col', class: 'task-worker' }, 'Worker'),
      h('th', { scope: 'col', class: 'task-owner' }, 'Owner'),
      h('th', { scope: 'col', class: 'task-created' }, 'Created'),
      h('th', { scope: 'col', class: 'task-finished' }, 'Finished'))),
  ];
}

function dueEl(due, cls) {
  return h('span', { class: cls }, 'due ', timeEl(due, 'until'));
}

// progressCell is a task's first progress bar; on a phone, where the
// time columns are hidden, a scheduled task's due time.
function progressCell(task, due) {
  const report = (task.progress_reports || [])[0];
  if (!report) return due ? [dueEl(due, 'task-due task-due-narrow')] : [];
  return [progressEl(report, `Progress of ${task.name}: ${report.message || report.code}`),
    h('span', { class: 'progress-text' }, progressText(report))];
}

// finishedCell is when the task ended or, while it is scheduled, when it
// is due.
function finishedCell(task, due) {
  return due ? dueEl(due, 'task-due') : timeEl(task.finished_at);
}

// taskRow makes a tr[data-task-id][data-state] for a task of the API.
export function taskRow(task) {
  const tr = h('tr', { 'data-task-id': task.id, 'data-state': task.state },
    h('td', { class: 'task-name' }, h('a', { href: `#/tasks/${task.id}`, title: task.id }, task.name),
      ' ', h('span', { class: 'task-short-id', title: task.id }, shortId(task.id))),
    h('td', { class: 'task-state' }),
    h('td', { class: 'task-progress' }),
    h('td', { class: 'task-worker' }),
    h('td', { class: 'task-owner' }),
    h('td', { class: 'task-created' }),
    h('td', { class: 'task-finished' }));
  updateTaskRow(tr, task);
  return tr;
}

function setCell(td, key, build) {
  if (td.dataset.key === key) return;
  td.dataset.key = key;
  td.replaceChildren(...[].concat(build()));
}

// updateTaskRow brings a row up to date with a task (or with an event's
// part of one: state and progress_reports).
export function updateTaskRow(tr, task) {
  const cell = (cls) => tr.querySelector(`td.${cls}`);
  const full = 'worker' in task;
  // When a scheduled task is due: an event does not say, the row remembers.
  if (full) tr.dataset.due = task.scheduled_at || '';
  const due = task.state === 'scheduled' ? tr.dataset.due || null : null;
  tr.dataset.state = task.state;
  setCell(cell('task-state'), task.state, () => stateBadge(task.state));
  const report = (task.progress_reports || [])[0];
  setCell(cell('task-progress'), JSON.stringify([report || null, due]), () => progressCell(task, due));
  if (full) {
    const name = task.worker ? task.worker.name : '';
    setCell(cell('task-worker'), name, () => name || h('span', { class: 'none' }, '—'));
    setCell(cell('task-owner'), task.owner, () => task.owner || h('span', { class: 'none', title: 'open mode' }, '—'));
    setCell(cell('task-created'), task.created_at, () => timeEl(task.created_at));
    setCell(cell('task-finished'), JSON.stringify([task.finished_at, due]), () => finishedCell(task, due));
  }
}

// applyEvent shows a task event in a row; a task that just ended shows
// its event's time as its finish until the row is read again.
export function applyEvent(tr, ev) {
  updateTaskRow(tr, ev);
  const finished = tr.querySelector('td.task-finished');
  const wasDue = finished.querySelector('.task-due') !== null;
  if (FINAL.has(ev.state) && (wasDue || !finished.querySelector('time'))) {
    setCell(finished, ev.updated_at, () => timeEl(ev.updated_at));
  } else if (wasDue && ev.state !== 'scheduled') {
    setCell(finished, '', () => timeEl(null)); // it came due
  }
}

// LiveTasks remembers the latest event of each task, so that a read that
// started before an event cannot show an older state over it.
export class LiveTasks {
  constructor(limit = 2000) {
    this.events = new Map();
    this.limit = limit;
  }

  add(ev) {
    this.events.delete(ev.id);
    this.events.set(ev.id, ev);
    if (this.events.size > this.limit) this.events.delete(this.events.keys().next().value);
  }

  // overlay returns the task, with the state and progress of a later event.
  overlay(task) {
    const ev = this.events.get(task.id);
    if (!ev || !newer(ev.updated_at, task.updated_at)) return task;
    return { ...task, state: ev.state, progress_reports: ev.progress_reports };
  }
}

// --- The page ---

function readFilters(params) {
  const offset = Number.parseInt(params.get('offset') || '0', 10);
  return {
    state: params.get('state') || '',
    name: params.get('name') || '',
    worker: params.get('worker') || '',
    task_group: params.get('task_group') || '',
    owner: params.get('owner') || '',
    ordering: params.get('ordering') || '-created_at',
    offset: Number.isFinite(offset) && offset > 0 ? offset : 0,
  };
}

function filtersHash(f) {
  const q = new URLSearchParams();
  for (const key of ['state', 'name', 'worker', 'task_group', 'owner']) if (f[key]) q.set(key, f[key]);
  if (f.ordering && f.ordering !== '-created_at') q.set('ordering', f.ordering);
  if (f.offset > 0) q.set('offset', String(f.offset));
  const s = q.toString();
  return s ? `#/tasks?${s}` : '#/tasks';
}

function apiQuery(f) {
  return api.query({
    limit: PAGE_SIZE, offset: f.offset, ordering: f.ordering, state: f.state, name__contains: f.name,
    worker: f.worker, task_group: f.task_group, owner: f.owner,
  });
}

export function tasksPage(ctx, route) {
  let filters = readFilters(route.params);
  let rows = new Map();
  const live = new LiveTasks();
  const aborter = new AbortController();
  let seq = 0;
  let stream = null;
  const reload = throttled(() => load(), 500);

  const field = (id, label, control) => h('div', { class: 'field' }, h('label', { for: id }, label), control);
  const stateSelect = h('select', { id: 'filter-state', name: 'state' },
    h('option', { value: '' }, 'Any'), STATES.map((s) => h('option', { value: s }, s)));
  const text = (id, name, placeholder) => h('input', {
    id, name, type: 'search', placeholder, autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off',
  });
  const nameInput = text('filter-name', 'name', 'contains…');
  const workerInput = text('filter-worker', 'worker', 'pid@host');
  const groupInput = text('filter-group', 'task_group', 'group id');
  const ownerInput = text('filter-owner', 'owner', 'user');
  const orderingSelect = h('select', { id: 'filter-ordering', name: 'ordering' },
    ORDERINGS.map(([value, label]) => h('option', { value }, label)));
  const form = h('form', { id: 'task-filters', role: 'search', 'aria-label': 'Filter tasks' },
    field('filter-state', 'State', stateSelect),
    field('filter-name', 'Name', nameInput),
    field('filter-worker', 'Worker', workerInput),
    field('filter-group', 'Group', groupInput),
    field('filter-owner', 'Owner', ownerInput),
    field('filter-ordering', 'Order', orderingSelect),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
      h('button', { type: 'button', id: 'filter-clear', onclick: () => { form.reset(); orderingSelect.value = '-created_at'; apply('push'); } }, 'Clear')));
  const controls = [
    ['state', stateSelect], ['name', nameInput], ['worker', workerInput], ['task_group', groupInput],
    ['owner', ownerInput], ['ordering', orderingSelect],
  ];

  const tbody = h('tbody', {}, messageRow(TASK_COLUMNS, 'Loading tasks…', 'loading'));
  const table = h('table', { id: 'tasks-table', class: 'tasks' }, taskTableHead('Tasks'), tbody);
  const pages = pager({ prev: 'prev-page', next: 'next-page', info: 'page-info' }, 'Pages of tasks',
    (offset) => { location.hash = filtersHash({ ...filters, offset }); });
  const status = h('p', { class: 'load-error', role: 'status' });
  // On a phone the filters fold away unless some are set; on a wider
  // screen the box is always open and its summary hidden.
  const summaryText = h('span', {}, 'Filters');
  const box = h('details', { class: 'filters' }, h('summary', {}, summaryText), form);
  box.open = !window.matchMedia('(max-width: 560px)').matches;

  function showFilters() {
    let active = 0;
    for (const [key, el] of controls) {
      if (el.value !== filters[key] && document.activeElement !== el) el.value = filters[key];
      if (key !== 'ordering' && filters[key]) active += 1;
    }
    summaryText.textContent = active ? `Filters (${active} set)` : 'Filters';
    if (active) box.open = true;
  }

  // apply turns the form into the URL; the router then calls update.
  // An unchanged URL reads the page again only when asked (force).
  function apply(mode, force = false) {
    const f = { offset: 0 };
    for (const [key, el] of controls) f[key] = el.value.trim();
    const hash = filtersHash(f);
    if (hash === location.hash) {
      if (force) load();
      return;
    }
    if (mode === 'replace') location.replace(hash);
    else location.hash = hash;
  }
  const applySoon = debounced(() => apply('replace'), 400);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    applySoon.cancel();
    apply('push', true);
  });
  for (const el of [stateSelect, orderingSelect]) el.addEventListener('change', () => apply('push'));
  for (const el of [nameInput, workerInput, groupInput, ownerInput]) {
    el.addEventListener('input', applySoon);
    el.addEventListener('change', () => { applySoon.cancel(); apply('push'); });
  }

  async function load() {
    const mine = ++seq;
    table.setAttribute('aria-busy', 'true');
    try {
      const page = await api.get(`/tasks${apiQuery(filters)}`, { signal: aborter.signal });
      if (mine !== seq) return;
      status.textContent = '';
      render(page);
    } catch (err) {
      if (api.isAbort(err) || mine !== seq || err.status === 401) return;
      status.textContent = `Could not read the tasks: ${err.detail || err.message}`;
      rows = new Map();
      tbody.replaceChildren(messageRow(TASK_COLUMNS, 'No tasks', 'empty'));
      pages.set(filters.offset, PAGE_SIZE, 0, 0, false);
    } finally {
      if (mine === seq) table.removeAttribute('aria-busy');
    }
  }

  function render(page) {
    const tasks = page.results.map((t) => live.overlay(t));
    if (!tasks.length) {
      rows = new Map();
      tbody.replaceChildren(messageRow(TASK_COLUMNS, 'No tasks', 'empty'));
    } else {
      rows = reconcile(tbody, tasks, rows, (t) => t.id, taskRow, updateTaskRow);
    }
    pages.set(filters.offset, PAGE_SIZE, tasks.length, page.count, page.next !== null);
  }

  const showsNewest = () => filters.ordering === '-created_at' && filters.offset === 0;

  // mayMatch: could a task not on the page belong on it? Only what an
  // event says can be checked here; the read settles the rest.
  function mayMatch(ev) {
    if (filters.state && ev.state !== filters.state) return false;
    if (filters.name && !ev.name.includes(filters.name)) return false;
    if (filters.task_group && (!ev.task_group || !filters.task_group.includes(idOf(ev.task_group)))) return false;
    return true;
  }

  function onEvent(ev) {
    live.add(ev);
    const tr = rows.get(ev.id);
    if (tr) {
      const before = tr.dataset.state;
      applyEvent(tr, ev);
      // A new state brings a worker or an end time: read the page again.
      if (before !== ev.state) reload();
    } else if (showsNewest() && mayMatch(ev)) {
      reload();
    }
  }

  return {
    mount(root) {
      root.append(h('section', { id: 'tasks-page', class: 'page', 'aria-labelledby': 'tasks-title' },
        h('div', { class: 'page-head' }, h('h1', { id: 'tasks-title' }, 'Tasks')),
        box, status,
        h('div', { class: 'table-wrap' }, table),
        pages.el));
      showFilters();
      stream = api.follow('', { onEvent, onConnected: reload });
      load();
    },
    update(r) {
      filters = readFilters(r.params);
      showFilters();
      load();
    },
    unmount() {
      aborter.abort();
      reload.cancel();
      applySoon.cancel();
      if (stream) stream.stop();
    },
  };
}
