// resources.js: the resources (#/resources?name=&busy=&offset=), the
// longest queues first, and one resource (#/resources/<name>): its
// capacity, its holders and its queue. Events carry no resources, so both
// read again when a task changes state (at most once a second, from
// /events) and every 10 s besides, for what changes no task (a capacity).

import * as api from './api.js';
import { h, timeEl, throttled, debounced, reconcile, messageRow, pager, idOf, shortId } from './dom.js';

export const RESOURCES_PAGE_SIZE = 20;
const COLUMNS = 4;
const RELOAD_MS = 1000;
const POLL_MS = 10000;
// The states a task may hold or wait for a resource in, to name the
// tasks of a resource's page with one read.
const QUEUED_STATES = 'scheduled,waiting,running,canceling';
const NAMES_LIMIT = 250;

// resourceHash is the route of a resource's page; the name is one
// fragment segment, so a "/" in it is encoded too.
export function resourceHash(name) {
  return `#/resources/${encodeURIComponent(name)}`;
}

// resourceLink links a resource's name to its page.
export function resourceLink(name) {
  return h('a', { href: resourceHash(name), class: 'resource-link' }, h('code', {}, name));
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

// holdersLabel says a resource's holders in words: "2 of 4 held",
// "1 holder, no capacity, exclusively".
function holdersLabel(r) {
  const n = r.holders.count;
  const held = r.capacity === null ? `${plural(n, 'holder', 'holders')}, no capacity` : `${n} of ${r.capacity} held`;
  return r.holders.exclusive ? `${held}, exclusively` : held;
}

// holdersEl shows a resource's holders: with a capacity, a bar filled
// holders/capacity and "2 / 4"; without one, the count alone; and
// "exclusive" when its one holder holds it alone.
export function holdersEl(r) {
  const n = r.holders.count;
  let bar = null;
  if (r.capacity !== null) {
    const fill = h('span', { class: 'fill' });
    fill.style.width = `${Math.min(100, (100 * n) / r.capacity)}%`; // CSSOM, allowed by the CSP
    bar = h('div', {
      class: 'resource-bar', role: 'img', 'aria-label': holdersLabel(r),
      'data-full': n >= r.capacity, 'data-exclusive': r.holders.exclusive,
    }, fill);
  }
  return [bar, h('span', { class: 'resource-holders-line' },
    h('span', { class: 'resource-holders-count' }, r.capacity === null ? String(n) : `${n} / ${r.capacity}`),
    r.capacity === null ? h('span', { class: 'muted' }, n === 1 ? 'holder' : 'holders') : null,
    r.holders.exclusive ? h('span', { class: 'badge exclusive', title: 'Its one holder holds it exclusively' }, 'exclusive') : null)];
}

// --- The list ---

function readFilters(params) {
  const offset = Number.parseInt(params.get('offset') || '0', 10);
  return {
    name: params.get('name') || '',
    busy: ['1', 'true'].includes(params.get('busy') || ''),
    offset: Number.isFinite(offset) && offset > 0 ? offset : 0,
  };
}

function filtersHash(f) {
  const q = new URLSearchParams();
  if (f.name) q.set('name', f.name);
  if (f.busy) q.set('busy', '1');
  if (f.offset > 0) q.set('offset', String(f.offset));
  const s = q.toString();
  return s ? `#/resources?${s}` : '#/resources';
}

function apiQuery(f) {
  return api.query({
    ordering: '-waiting', name__contains: f.name, busy: f.busy ? 'true' : '', limit: RESOURCES_PAGE_SIZE, offset: f.offset,
  });
}

function setCell(td, data, build) {
  const key = JSON.stringify(data);
  if (td.dataset.key === key) return;
  td.dataset.key = key;
  td.replaceChildren(...[build()].flat(Infinity).filter((x) => x !== null && x !== undefined));
}

function resourceRow(r) {
  const tr = h('tr', { 'data-resource': r.name },
    h('td', { class: 'resource-name' }, resourceLink(r.name)),
    h('td', { class: 'resource-holders' }),
    h('td', { class: 'resource-waiting' }),
    h('td', { class: 'resource-oldest' }));
  updateResourceRow(tr, r);
  return tr;
}

function updateResourceRow(tr, r) {
  const cell = (cls) => tr.querySelector(`td.${cls}`);
  tr.dataset.holders = String(r.holders.count);
  tr.dataset.capacity = r.capacity === null ? '' : String(r.capacity);
  tr.dataset.waiting = String(r.waiting);
  setCell(cell('resource-holders'), [r.holders.count, r.capacity, r.holders.exclusive], () => holdersEl(r));
  // On a phone, where the Oldest column is hidden, the oldest wait shows
  // under the queue's length.
  setCell(cell('resource-waiting'), [r.waiting, r.oldest_waiting_since], () => [
    h('span', { class: 'resource-waiting-count' }, String(r.waiting)),
    r.oldest_waiting_since ? h('span', { class: 'resource-oldest-narrow' }, 'oldest ', timeEl(r.oldest_waiting_since)) : null]);
  setCell(cell('resource-oldest'), r.oldest_waiting_since, () => timeEl(r.oldest_waiting_since));
}

export function resourcesPage(ctx, route) {
  let filters = readFilters(route.params);
  let rows = new Map();
  let seq = 0;
  let stream = null;
  let pollTimer = null;
  let stopped = false;
  const states = new Map(); // task id -> the state its last event said
  const aborter = new AbortController();
  const reload = throttled(() => load(false), RELOAD_MS);

  const nameInput = h('input', {
    id: 'filter-resource-name', name: 'name', type: 'search', placeholder: 'contains…', autocomplete: 'off',
    spellcheck: 'false', autocapitalize: 'off',
  });
  const busyInput = h('input', { id: 'filter-busy', name: 'busy', type: 'checkbox' });
  const form = h('form', { id: 'resource-filters', role: 'search', 'aria-label': 'Filter resources' },
    h('div', { class: 'field' }, h('label', { for: 'filter-resource-name' }, 'Name'), nameInput),
    h('div', { class: 'field field-check' }, busyInput,
      h('label', { for: 'filter-busy', title: 'Only resources that are held or waited for' }, 'Busy only')));

  const tbody = h('tbody', {}, messageRow(COLUMNS, 'Loading resources…', 'loading'));
  const table = h('table', { id: 'resources-table', class: 'resources' },
    h('caption', { class: 'visually-hidden' }, 'Resources, the longest queues first'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', class: 'resource-name' }, 'Name'),
      h('th', { scope: 'col', class: 'resource-holders' }, 'Holders'),
      h('th', { scope: 'col', class: 'resource-waiting' }, 'Waiting'),
      h('th', { scope: 'col', class: 'resource-oldest' }, 'Oldest wait'))),
    tbody);
  const pages = pager({ prev: 'resources-prev-page', next: 'resources-next-page', info: 'resources-page-info' }, 'Pages of resources',
    (offset) => { location.hash = filtersHash({ ...filters, offset }); });
  const status = h('p', { class: 'load-error', role: 'status' });

  function showFilters() {
    if (nameInput.value !== filters.name && document.activeElement !== nameInput) nameInput.value = filters.name;
    busyInput.checked = filters.busy;
  }

  // apply turns the form into the URL; the router then calls update.
  function apply(mode) {
    const hash = filtersHash({ name: nameInput.value.trim(), busy: busyInput.checked, offset: 0 });
    if (hash === location.hash) return;
    if (mode === 'replace') location.replace(hash);
    else location.hash = hash;
  }
  const applySoon = debounced(() => apply('replace'), 400);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    applySoon.cancel();
    apply('push');
  });
  nameInput.addEventListener('input', applySoon);
  nameInput.addEventListener('change', () => { applySoon.cancel(); apply('push'); });
  busyInput.addEventListener('change', () => { applySoon.cancel(); apply('push'); });

  // load reads the page; busy (a new query) dims the table meanwhile,
  // which a live re-read does not.
  async function load(busy) {
    const mine = ++seq;
    clearTimeout(pollTimer);
    if (busy) table.setAttribute('aria-busy', 'true');
    try {
      const page = await api.get(`/resources${apiQuery(filters)}`, { signal: aborter.signal });
      if (mine !== seq) return;
      status.textContent = '';
      if (!page.results.length) {
        rows = new Map();
        tbody.replaceChildren(messageRow(COLUMNS, filters.name || filters.busy
          ? 'No resources match'
          : 'No resources: none is held, waited for or given a capacity', 'empty'));
      } else {
        rows = reconcile(tbody, page.results, rows, (r) => r.name, resourceRow, updateResourceRow);
      }
      pages.set(filters.offset, RESOURCES_PAGE_SIZE, page.results.length, page.count, page.next !== null);
    } catch (err) {
      if (api.isAbort(err) || mine !== seq || err.status === 401) return;
      status.textContent = `Could not read the resources: ${err.detail || err.message}`;
    } finally {
      if (mine === seq) {
        table.removeAttribute('aria-busy');
        if (!stopped) pollTimer = setTimeout(reload, POLL_MS);
      }
    }
  }

  // onEvent reads again when a task changed state: a progress report
  // changes no resource.
  function onEvent(ev) {
    if (states.get(ev.id) === ev.state) return;
    states.set(ev.id, ev.state);
    if (states.size > 5000) states.clear();
    reload();
  }

  return {
    mount(root) {
      root.append(h('section', { id: 'resources-page', class: 'page', 'aria-labelledby': 'resources-title' },
        h('div', { class: 'page-head' }, h('h1', { id: 'resources-title' }, 'Resources')),
        h('p', { class: 'summary' }, 'Resources that are held, waited for or given a capacity, the longest queues first.'),
        h('div', { class: 'filters resource-filters' }, form),
        status,
        h('div', { class: 'table-wrap' }, table),
        pages.el));
      showFilters();
      stream = api.follow('', { onEvent, onConnected: reload });
      load(true);
    },
    update(r) {
      filters = readFilters(r.params);
      showFilters();
      load(true);
    },
    unmount() {
      stopped = true;
      aborter.abort();
      reload.cancel();
      applySoon.cancel();
      clearTimeout(pollTimer);
      if (stream) stream.stop();
    },
  };
}

// --- One resource ---

export function resourcePage(ctx, route) {
  const name = route.id;
  const names = new Map(); // task id -> name, for links
  const states = new Map(); // task id -> the state its last event said
  const aborter = new AbortController();
  let seq = 0;
  let stream = null;
  let pollTimer = null;
  let gone = false;
  const keys = {};
  const reload = throttled(() => load(), RELOAD_MS);

  const head = h('div', { class: 'page-head' },
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/resources' }, 'Resources'), ' / ', h('span', { class: 'mono' }, name)),
    h('div', { class: 'title-row' }, h('h1', { id: 'resource-name' }, name)));
  const facts = h('section', { id: 'resource-facts', class: 'card', 'aria-labelledby': 'resource-facts-title' },
    h('h2', { id: 'resource-facts-title' }, 'Details'), h('p', { class: 'loading' }, 'Loading…'));
  const holders = h('section', { id: 'resource-holders', class: 'card', 'aria-labelledby': 'resource-holders-title' });
  const waiting = h('section', { id: 'resource-waiting-tasks', class: 'card', 'aria-labelledby': 'resource-waiting-title' });
  const root = h('section', { id: 'resource-page', class: 'page', 'data-resource': name, 'aria-labelledby': 'resource-name' },
    head, h('div', { class: 'resource-grid' }, facts, h('div', {}, holders, waiting)));

  function linkToTask(taskId) {
    const n = names.get(taskId);
    return h('a', { href: `#/tasks/${taskId}`, title: taskId }, n ? `${n} ${shortId(taskId)}` : taskId);
  }

  // fill rebuilds a part of the page only when its data changed.
  function fill(key, node, data, build) {
    const k = JSON.stringify(data);
    if (keys[key] === k) return;
    keys[key] = k;
    node.replaceChildren(...[build()].flat(Infinity).filter((x) => x !== null && x !== undefined));
  }

  // taskList lists hrefs of tasks, and says how many the count has that
  // are not listed: past the first 100, or other users' tasks.
  function taskList(tag, id, hrefs, count, empty) {
    const ids = hrefs.map(idOf);
    const more = count - ids.length;
    return [
      ids.length ? h(tag, { id, class: 'resource-tasks' }, ids.map((t) => h('li', { 'data-task-id': t }, linkToTask(t)))) : h('p', { class: 'empty' }, empty),
      more > 0 ? h('p', { class: 'muted resource-more' }, `${more} more not listed: past the first 100, or other users' tasks.`) : null,
    ];
  }

  function render(r) {
    const ids = [...r.holders.tasks, ...(r.waiting_tasks || [])].map(idOf);
    fill('facts', facts, [r.capacity, r.holders.count, r.holders.exclusive, r.waiting, r.oldest_waiting_since], () => [
      h('h2', { id: 'resource-facts-title' }, 'Details'),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Capacity'), h('dd', { id: 'resource-capacity' }, r.capacity === null
          ? h('span', { class: 'none' }, 'none: any number of tasks may hold it shared')
          : String(r.capacity)),
        h('dt', {}, 'Holders'), h('dd', { id: 'resource-holders-count' }, holdersEl(r)),
        h('dt', {}, 'Waiting'), h('dd', { id: 'resource-waiting' }, String(r.waiting)),
        h('dt', {}, 'Oldest wait'), h('dd', { id: 'resource-oldest' }, timeEl(r.oldest_waiting_since, 'both'))),
    ]);
    fill('holders', holders, [r.holders, ids.map((t) => names.get(t))], () => [
      h('h2', { id: 'resource-holders-title' }, r.holders.exclusive ? 'Held exclusively by' : `Holders (${r.holders.count})`),
      taskList('ul', 'resource-holder-list', r.holders.tasks, r.holders.count, 'No task holds it.'),
    ]);
    const queue = r.waiting_tasks || [];
    fill('waiting', waiting, [r.waiting, queue, queue.map((t) => names.get(idOf(t)))], () => [
      h('h2', { id: 'resource-waiting-title' }, `Waiting, in queue order (${r.waiting})`),
      taskList('ol', 'resource-waiting-list', queue, r.waiting, 'No task waits for it.'),
    ]);
  }

  // loadNames names the tasks shown, with one read of the tasks on the
  // resource, when some are not named yet.
  async function loadNames(ids) {
    if (!ids.some((t) => !names.has(t))) return;
    try {
      const page = await api.get(`/tasks${api.query({
        reserved_resources: name, state__in: QUEUED_STATES, ordering: 'created_at', limit: NAMES_LIMIT,
      })}`, { signal: aborter.signal });
      for (const t of page.results) names.set(t.id, t.name);
    } catch {
      // names are a nicety
    }
    for (const t of ids) if (!names.has(t)) names.set(t, '');
    if (names.size > 5000) names.clear();
  }

  async function load() {
    const mine = ++seq;
    clearTimeout(pollTimer);
    let r;
    try {
      r = await api.get(`/resources/${encodeURIComponent(name)}`, { signal: aborter.signal });
      if (mine !== seq) return;
      await loadNames([...r.holders.tasks, ...(r.waiting_tasks || [])].map(idOf));
    } catch (err) {
      if (api.isAbort(err) || mine !== seq || err.status === 401) return;
      if (err.status === 400 || err.status === 404) {
        notFound(err);
        return;
      }
      ctx.flash(`Could not read the resource: ${err.detail || err.message}`);
      if (!gone) pollTimer = setTimeout(reload, POLL_MS);
      return;
    }
    if (mine !== seq || gone) return;
    ctx.setTitle(name);
    render(r);
    pollTimer = setTimeout(reload, POLL_MS);
  }

  function onEvent(ev) {
    if (states.get(ev.id) === ev.state) return;
    states.set(ev.id, ev.state);
    if (states.size > 5000) states.clear();
    reload();
  }

  function notFound(err) {
    gone = true;
    if (stream) stream.stop();
    root.replaceChildren(h('div', { class: 'page-head' }, h('h1', { id: 'resource-name' }, 'No such resource')),
      h('p', { class: 'notice' }, err.detail), h('p', {}, h('a', { href: '#/resources' }, 'All resources')));
  }

  return {
    mount(parent) {
      parent.append(root);
      stream = api.follow('', { onEvent, onConnected: reload });
      load();
    },
    unmount() {
      gone = true;
      aborter.abort();
      reload.cancel();
      clearTimeout(pollTimer);
      if (stream) stream.stop();
    },
  };
}
