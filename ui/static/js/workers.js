// workers.js: the workers (#/workers), read again every 2 s while shown.
// Only admins see workers: a user gets a notice.

import * as api from './api.js';
import { h, timeEl, reconcile, messageRow, idOf, shortId } from './dom.js';

const POLL_MS = 2000;
const COLUMNS = 7;

export function workersPage(ctx) {
  let rows = new Map();
  let timer = null;
  let stopped = false;
  const names = new Map(); // task id -> name
  const aborter = new AbortController();

  const summary = h('p', { class: 'summary', id: 'workers-summary' });
  const tbody = h('tbody', {}, messageRow(COLUMNS, 'Loading workers…', 'loading'));
  const table = h('table', { id: 'workers-table', class: 'workers' },
    h('caption', { class: 'visually-hidden' }, 'Workers'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', class: 'worker-name' }, 'Name'),
      h('th', { scope: 'col', class: 'worker-status' }, 'Status'),
      h('th', { scope: 'col', class: 'worker-heartbeat' }, 'Heartbeat'),
      h('th', { scope: 'col', class: 'worker-concurrency' }, 'Slots'),
      h('th', { scope: 'col', class: 'worker-tasks' }, 'Current tasks'),
      h('th', { scope: 'col', class: 'worker-versions' }, 'Versions'),
      h('th', { scope: 'col', class: 'worker-started' }, 'Started'))),
    tbody);
  const status = h('p', { class: 'load-error', role: 'status' });
  const section = h('section', { id: 'workers-page', class: 'page', 'aria-labelledby': 'workers-title' },
    h('div', { class: 'page-head' }, h('h1', { id: 'workers-title' }, 'Workers')),
    summary, status, h('div', { class: 'table-wrap' }, table));

  function taskLinks(w) {
    if (!w.current_tasks.length) return h('span', { class: 'none' }, 'idle');
    return h('ul', { class: 'plain' }, w.current_tasks.map((href) => {
      const tid = idOf(href);
      const name = names.get(tid);
      return h('li', {}, h('a', { href: `#/tasks/${tid}`, title: tid }, name ? `${name} ${shortId(tid)}` : tid));
    }));
  }

  function row(w) {
    const tr = h('tr', { 'data-worker': w.name },
      h('td', { class: 'worker-name' }, w.name),
      h('td', { class: 'worker-status' }),
      h('td', { class: 'worker-heartbeat' }),
      h('td', { class: 'worker-concurrency' }),
      h('td', { class: 'worker-tasks' }),
      h('td', { class: 'worker-versions' }),
      h('td', { class: 'worker-started' }));
    update(tr, w);
    return tr;
  }

  function update(tr, w) {
    const set = (cls, data, build) => {
      const td = tr.querySelector(`td.${cls}`);
      const key = JSON.stringify(data);
      if (td.dataset.key === key) return;
      td.dataset.key = key;
      td.replaceChildren(...[].concat(build()));
    };
    const st = w.missing ? 'missing' : 'online';
    tr.dataset.status = st;
    set('worker-status', st, () => h('span', { class: `worker-state worker-${st}` }, st));
    set('worker-heartbeat', w.last_heartbeat, () => timeEl(w.last_heartbeat));
    set('worker-concurrency', w.concurrency, () => String(w.concurrency));
    set('worker-tasks', [w.current_tasks, w.current_tasks.map((t) => names.get(idOf(t)))], () => taskLinks(w));
    const versions = Object.entries(w.versions || {});
    set('worker-versions', versions, () => (versions.length
      ? versions.map(([k, v], i) => [i ? ', ' : '', h('code', {}, `${k} ${v}`)]).flat()
      : h('span', { class: 'none' }, '—')));
    set('worker-started', w.started_at, () => timeEl(w.started_at));
  }

  async function load() {
    timer = null;
    try {
      const page = await api.get(`/workers${api.query({ limit: 1000 })}`, { signal: aborter.signal });
      if (stopped) return;
      status.textContent = '';
      await loadNames(page.results);
      if (stopped) return;
      const online = page.results.filter((w) => !w.missing).length;
      summary.textContent = `${online} online, ${page.results.length - online} missing · read again every ${POLL_MS / 1000} s`;
      if (!page.results.length) {
        rows = new Map();
        tbody.replaceChildren(messageRow(COLUMNS, 'No workers', 'empty'));
      } else {
        rows = reconcile(tbody, page.results, rows, (w) => w.name, row, update);
      }
    } catch (err) {
      if (api.isAbort(err) || stopped || err.status === 401) return;
      if (err.status === 403) {
        summary.remove();
        table.parentElement.replaceWith(h('p', { class: 'notice' }, 'Only admins see workers.'));
        return; // the role will not change while the page is shown
      }
      status.textContent = `Could not read the workers: ${err.detail || err.message}`;
    }
    if (!stopped) timer = setTimeout(load, POLL_MS);
  }

  // loadNames names the tasks the workers run, with one read of the
  // running tasks, when some are not named yet.
  async function loadNames(workers) {
    const ids = workers.flatMap((w) => w.current_tasks.map(idOf));
    if (!ids.some((x) => !names.has(x))) return;
    try {
      const page = await api.get(`/tasks${api.query({ state__in: 'running,canceling', limit: 1000 })}`, { signal: aborter.signal });
      for (const t of page.results) names.set(t.id, t.name);
    } catch {
      // names are a nicety
    }
    for (const x of ids) if (!names.has(x)) names.set(x, '');
    if (names.size > 5000) names.clear();
  }

  return {
    mount(root) {
      root.append(section);
      load();
    },
    unmount() {
      stopped = true;
      aborter.abort();
      clearTimeout(timer);
    },
  };
}
