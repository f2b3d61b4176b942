// dom.js: building the DOM without HTML strings, times, states, progress
// bars and small timing helpers shared by the pages.

// h creates an element. attrs: "class", "text" (textContent), "dataset"
// (an object), "on<event>" (a listener); any other key is an attribute,
// skipped when null, undefined or false, empty when true. Children are
// nodes, strings or arrays of them; null and undefined are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

// The task states (DESIGN §2), in the order the UI lists them.
export const STATES = ['scheduled', 'waiting', 'running', 'canceling', 'completed', 'failed', 'canceled', 'skipped', 'dropped'];
export const FINAL = new Set(['completed', 'failed', 'canceled', 'skipped', 'dropped']);
export const INCOMPLETE = new Set(['scheduled', 'waiting', 'running', 'canceling']);
// RETRYABLE: the final states a task may be run again from (POST …/retry).
export const RETRYABLE = new Set(['failed', 'dropped', 'canceled']);

// stateBadge shows a state as text; the color and the dot only repeat it.
export function stateBadge(state, attrs = {}) {
  return h('span', { ...attrs, class: `state state-${state}`, 'data-state': state }, state);
}

// idOf returns the id at the end of an href such as /api/v1/tasks/{id}.
export function idOf(href) {
  return href ? String(href).split('/').filter(Boolean).pop() : '';
}

// shortId is the tail of a UUIDv7: its head is a timestamp, the same for
// tasks made close together, its tail is random.
export function shortId(id) {
  return String(id).slice(-8);
}

// --- Times ---

const exactFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  fractionalSecondDigits: 3, timeZoneName: 'short',
});
const clockFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dayClockFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });

// ago says how long ago a time was: "3 s ago", "5 min ago", "2 h ago".
export function ago(date, now = Date.now()) {
  let s = Math.floor((now - date.getTime()) / 1000);
  if (s < 0) {
    if (s > -60) s = 0; // clock skew between the browser and the server
    else return `in ${duration(-s * 1000)}`;
  }
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h ago`;
  return `${Math.floor(hrs / 24)} d ago`;
}

// until says how soon a time comes: "in 45 s", "in 4 min 5 s"; "now"
// within a minute past (a due task waits for a worker to take it up),
// then as ago() does.
export function until(date, now = Date.now()) {
  const ms = date.getTime() - now;
  if (ms > 0) return ms < 60000 ? `in ${Math.ceil(ms / 1000)} s` : `in ${duration(ms)}`;
  return ms > -60000 ? 'now' : ago(date, now);
}

// goDuration shortens a Go duration string: "1h0m0s" is "1h", "2m0s" "2m".
export function goDuration(text) {
  return String(text || '').replace(/([hm])0s$/, '$1').replace(/h0m$/, 'h');
}

// duration formats milliseconds: "850 ms", "12.3 s", "4 min 5 s", "2 h 3 min".
export function duration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function localTime(date) {
  const today = new Date();
  return date.toDateString() === today.toDateString() ? clockFormat.format(date) : dayClockFormat.format(date);
}

// timeText is a time as its mode shows it: "ago" ("3 s ago"), "until"
// ("in 4 min 5 s"), "both" or "both-until" (the local time, then the
// relative one in parentheses).
function timeText(date, mode) {
  const rel = mode === 'until' || mode === 'both-until' ? until(date) : ago(date);
  return mode === 'both' || mode === 'both-until' ? `${localTime(date)} (${rel})` : rel;
}

// timeEl shows an RFC 3339 time relative ("3 s ago", or "in 4 min" with
// mode "until"), or local and relative with mode "both" ("both-until"),
// with the exact local time as its title; the ticker keeps the text
// current. A null time is a dash.
export function timeEl(iso, mode = 'ago') {
  if (!iso) return h('span', { class: 'none', 'aria-label': 'none' }, '—');
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h('span', {}, iso);
  return h('time', { datetime: iso, title: exactFormat.format(date), dataset: { rel: mode } }, timeText(date, mode));
}

// startTicker refreshes every relative time on the page once a second.
export function startTicker() {
  setInterval(() => {
    for (const el of document.querySelectorAll('time[data-rel]')) {
      const text = timeText(new Date(el.dateTime), el.dataset.rel);
      if (el.textContent !== text) el.textContent = text;
    }
  }, 1000);
}

// newer reports whether RFC 3339 time a is later than b.
export function newer(a, b) {
  if (!b) return !!a;
  if (!a) return false;
  if (a.length === b.length) return a > b; // the API's fixed format sorts as text
  return Date.parse(a) > Date.parse(b);
}

// --- Progress ---

// progressEl is a <progress> for a progress report: value and max follow
// done and total; without a total it is indeterminate.
export function progressEl(report, label) {
  const attrs = { 'aria-label': label || report.message || report.code || 'Progress' };
  if (report.total !== null && report.total !== undefined) {
    attrs.max = report.total;
    attrs.value = report.done;
  }
  return h('progress', attrs);
}

// progressText: "3 / 10 files", or "3 files" without a total.
export function progressText(report) {
  const suffix = report.suffix ? ` ${report.suffix}` : '';
  if (report.total === null || report.total === undefined) return `${report.done}${suffix}`;
  return `${report.done} / ${report.total}${suffix}`;
}

// The order of a group's states in its stacked bar: the final ones first.
const BAR_ORDER = ['completed', 'failed', 'dropped', 'canceled', 'skipped', 'canceling', 'running', 'waiting', 'scheduled'];

// stackedBar draws a group's counts: one segment per state present, as
// wide as its share of the total, titled "3 completed".
export function stackedBar(counts) {
  const total = counts.total || 0;
  const present = BAR_ORDER.filter((s) => (counts[s] || 0) > 0);
  const label = present.length ? present.map((s) => `${counts[s]} ${s}`).join(', ') : 'no tasks';
  const bar = h('div', { class: 'stacked-bar', role: 'img', 'aria-label': label });
  for (const s of present) {
    const seg = h('span', { class: 'seg', 'data-state': s, title: `${counts[s]} ${s}` });
    seg.style.width = `${(100 * counts[s]) / total}%`; // CSSOM, allowed by the CSP
    bar.append(seg);
  }
  return bar;
}

// --- Timing helpers ---

// throttled returns schedule(): fn runs soon after a call, at most once
// per interval and never twice at once; calls made meanwhile merge into
// the next run. schedule.cancel() stops it for good.
export function throttled(fn, interval = 500) {
  let last = 0;
  let timer = null;
  let running = false;
  let again = false;
  let stopped = false;
  const run = async () => {
    timer = null;
    running = true;
    last = Date.now();
    try {
      await fn();
    } catch (err) {
      console.error(err);
    } finally {
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  };
  const schedule = () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    if (timer !== null) return;
    timer = setTimeout(run, Math.max(30, last + interval - Date.now()));
  };
  schedule.cancel = () => {
    stopped = true;
    clearTimeout(timer);
  };
  return schedule;
}

// debounced returns a function that calls fn once calls stopped for wait ms.
export function debounced(fn, wait) {
  let timer = null;
  const call = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
  call.cancel = () => clearTimeout(timer);
  return call;
}

// reconcile makes parent's children the nodes for items, in order,
// reusing the node of an item already shown (keyed by key(item)) so that
// focus and selection survive a re-read. rows maps keys to nodes; the
// returned map replaces it.
export function reconcile(parent, items, rows, key, create, update) {
  const next = new Map();
  const nodes = items.map((item) => {
    const k = key(item);
    let node = rows.get(k);
    if (node) update(node, item);
    else node = create(item);
    next.set(k, node);
    return node;
  });
  const keep = new Set(nodes);
  for (const child of [...parent.children]) {
    if (!keep.has(child)) child.remove();
  }
  nodes.forEach((node, i) => {
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
  });
  return next;
}

// messageRow is a table row across all columns: "No tasks", "Loading…".
export function messageRow(cols, text, cls = 'empty') {
  return h('tr', { class: cls }, h('td', { colspan: cols }, text));
}

// pager is the prev / next buttons and "1–20 of 57" of a paged list
// ("of many" when the API did not count the list: count null).
// ids: {prev, next, info}; go(offset) is called on a click; set's more
// says whether another page follows (the page's next is not null).
export function pager(ids, label, go) {
  let state = { offset: 0, limit: 20 };
  const prev = h('button', { type: 'button', id: ids.prev, disabled: true, onclick: () => go(Math.max(0, state.offset - state.limit)) },
    h('span', { 'aria-hidden': 'true' }, '←'), ' Previous');
  const next = h('button', { type: 'button', id: ids.next, disabled: true, onclick: () => go(state.offset + state.limit) },
    'Next ', h('span', { 'aria-hidden': 'true' }, '→'));
  const info = h('span', { id: ids.info, class: 'page-info' }, '');
  const el = h('nav', { class: 'pager', 'aria-label': label }, prev, info, next);
  const set = (offset, limit, shown, count, more) => {
    state = { offset, limit };
    const total = count === null ? 'many' : count;
    info.textContent = shown > 0 ? `${offset + 1}–${offset + shown} of ${total}` : `0 of ${total}`;
    prev.disabled = offset <= 0;
    next.disabled = !more;
  };
  return { el, set };
}
