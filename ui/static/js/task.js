// task.js: one task (#/tasks/<id>): state, timings, schedule and retry
// policy, progress, why it waits, error, attempts, result, resources,
// family; live from /events?task=<id>&task=<child>…; cancel behind a
// confirmation; retry of a task that ended badly.

import * as api from './api.js';
import {
  h, INCOMPLETE, RETRYABLE, stateBadge, timeEl, progressEl, progressText, throttled, idOf, shortId, duration, goDuration, newer,
} from './dom.js';
import { resourceLink } from './resources.js';

const MAX_FOLLOWED_CHILDREN = 50;
const WAITING_POLL_MS = 3000;

// A slot is a place in the page that is rebuilt only when its data
// changed, so that live updates keep focus and selection elsewhere.
function slot() {
  return { node: document.createComment(''), key: null };
}

function fill(s, data, build) {
  const key = JSON.stringify(data);
  if (s.key === key) return;
  s.key = key;
  const node = build() || document.createComment('');
  s.node.replaceWith(node);
  s.node = node;
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

function section(id, title, ...content) {
  return h('section', { id, class: 'card', 'aria-labelledby': `${id}-title` }, h('h2', { id: `${id}-title` }, title), content);
}

const none = (text = 'None.') => h('p', { class: 'empty' }, text);

function codeBlock(value, label) {
  return h('pre', { tabindex: '0', 'aria-label': label }, value);
}

function fact(label, id, ...value) {
  return [h('dt', {}, label), h('dd', { id }, value)];
}

function errorLine(e) {
  return [h('strong', { class: 'error-kind' }, e.kind), ': ', h('span', { class: 'error-description' }, e.description)];
}

// retryText says a retry policy in words: "up to 3 attempts; waits 1s,
// ×2 each time, at most 1h".
function retryText(r) {
  const parts = [`up to ${r.max_attempts} ${r.max_attempts === 1 ? 'attempt' : 'attempts'}`];
  if (r.max_attempts > 1) {
    parts.push(`waits ${goDuration(r.initial_delay)}, ×${r.multiplier || 2} each time, at most ${goDuration(r.max_delay)}`);
  }
  if (r.jitter) parts.push(`${Math.round(r.jitter * 100)}% jitter`);
  if (r.dropped) parts.push('runs lost with their worker too');
  return parts.join('; ');
}

// attemptItem is one run of a task: its number, how it ended, where, when
// and for how long, and its error.
function attemptItem(a) {
  const ran = a.started_at && a.finished_at ? Date.parse(a.finished_at) - Date.parse(a.started_at) : null;
  return h('li', { class: 'attempt', 'data-attempt': a.number, 'data-state': a.state },
    h('div', { class: 'attempt-head' },
      h('span', { class: 'attempt-number' }, `#${a.number}`),
      stateBadge(a.state),
      a.worker ? h('span', { class: 'attempt-worker' }, a.worker) : null),
    h('div', { class: 'attempt-times' },
      h('span', {}, 'started ', timeEl(a.started_at, 'both')),
      a.finished_at ? h('span', {}, 'finished ', timeEl(a.finished_at, 'both')) : null,
      ran !== null ? h('span', { class: 'attempt-ran' }, `ran ${duration(ran)}`) : null),
    a.error ? h('p', { class: 'attempt-error' }, errorLine(a.error)) : null);
}

// attemptsSection lists a task's runs, and its next one while it waits
// for it; only for a task retried or with a retry policy.
function attemptsSection(t) {
  const attempts = t.attempts || [];
  if (attempts.length <= 1 && !t.retry) return null;
  const next = t.state === 'scheduled' && attempts.length && t.scheduled_at
    ? h('li', { class: 'attempt attempt-next', 'data-attempt': attempts.length + 1 },
      h('div', { class: 'attempt-head' }, h('span', { class: 'attempt-number' }, `#${attempts.length + 1}`), stateBadge('scheduled')),
      h('div', { class: 'attempt-times' }, h('span', {}, 'due ', timeEl(t.scheduled_at, 'both-until'))))
    : null;
  const max = t.retry ? ` of at most ${t.retry.max_attempts}` : '';
  return section('task-attempts', `Attempts (${attempts.length}${max})`, attempts.length || next
    ? h('ol', { class: 'attempts' }, attempts.map(attemptItem), next)
    : none('Not run yet.'));
}

export function taskPage(ctx, route) {
  const id = route.id;
  const aborter = new AbortController();
  const names = new Map(); // task id -> name, for links
  const groups = new Map(); // group id -> description
  let children = new Map(); // child id -> {name, state}
  let task = null;
  let lastEvent = null;
  let seq = 0;
  let stream = null;
  let streamQuery = null;
  let pollTimer = null;
  let gone = false;
  const reload = throttled(() => load(), 500);

  const slots = {
    head: slot(), facts: slot(), blocked: slot(), progress: slot(), error: slot(), attempts: slot(), nonFatal: slot(),
    result: slot(), args: slot(), resources: slot(), children: slot(),
  };
  const root = h('section', { id: 'task-page', class: 'page', 'data-task-id': id, 'aria-labelledby': 'task-name' },
    slots.head.node,
    h('div', { class: 'task-grid' },
      h('div', { class: 'task-main' }, slots.blocked.node, slots.progress.node, slots.error.node, slots.attempts.node, slots.nonFatal.node, slots.result.node, slots.args.node),
      h('div', { class: 'task-side' }, slots.facts.node, slots.resources.node, slots.children.node)));
  slots.head.key = 'loading';
  const loading = h('div', { class: 'page-head' }, h('h1', { id: 'task-name' }, 'Task'), h('p', { class: 'loading' }, 'Loading…'));
  slots.head.node.replaceWith(loading);
  slots.head.node = loading;

  function linkToTask(taskId) {
    const name = names.get(taskId);
    return h('a', { href: `#/tasks/${taskId}`, title: taskId }, name ? `${name} ${shortId(taskId)}` : taskId);
  }

  // blockerItem is one entry of blocked_by: an earlier task on a
  // resource, with the reason when the resource is full ("resource full
  // (4 of 4)"); a full resource whose holders the viewer cannot see; or
  // a reason alone (no worker provides the versions it requires).
  function blockerItem(b) {
    const reason = b.reason ? h('span', { class: 'blocker-reason' }, b.reason) : null;
    if (b.task) {
      return h('li', {}, 'Behind ', linkToTask(idOf(b.task)), b.resource ? [' on ', resourceLink(b.resource)] : null,
        reason ? [': ', reason] : null);
    }
    if (b.resource) return h('li', {}, resourceLink(b.resource), ': ', reason || 'held by earlier tasks you cannot see');
    return h('li', {}, reason || 'Waiting');
  }

  function render() {
    const t = task;
    const canCancel = INCOMPLETE.has(t.state) && t.state !== 'canceling' && ctx.mayCancel(t.owner);
    // Retrying is allowed to whoever may cancel the task, as the API does.
    const canRetry = RETRYABLE.has(t.state) && ctx.mayCancel(t.owner);
    ctx.setTitle(`${t.name} ${t.state}`);
    fill(slots.head, { name: t.name, state: t.state, canCancel, canRetry }, () => h('div', { class: 'page-head' },
      h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/tasks' }, 'Tasks'), ' / ', h('span', { class: 'mono' }, id)),
      h('div', { class: 'title-row' },
        h('h1', { id: 'task-name' }, t.name),
        stateBadge(t.state, { id: 'task-state' }),
        canCancel ? h('button', { type: 'button', id: 'cancel-task', class: 'danger', onclick: cancel }, 'Cancel task') : null,
        canRetry ? h('button', { type: 'button', id: 'retry-task', class: 'primary', onclick: retry }, 'Retry') : null)));

    const groupId = idOf(t.task_group);
    const parentId = idOf(t.parent_task);
    const retryOfId = idOf(t.retry_of);
    const factsData = {
      created: t.created_at, started: t.started_at, finished: t.finished_at, unblocked: t.unblocked_at, worker: t.worker,
      owner: t.owner, group: groupId, groupName: groups.get(groupId), parent: parentId, parentName: names.get(parentId), state: t.state,
      scheduled: t.scheduled_at, retry: t.retry, key: t.unique_key, retryOf: retryOfId, retryOfName: names.get(retryOfId),
    };
    fill(slots.facts, factsData, () => {
      const waited = t.started_at ? Date.parse(t.started_at) - Date.parse(t.created_at) : null;
      const ran = t.started_at && t.finished_at ? Date.parse(t.finished_at) - Date.parse(t.started_at) : null;
      return section('task-facts', 'Details', h('dl', { class: 'facts' },
        fact('Created', 'task-created', timeEl(t.created_at, 'both')),
        t.scheduled_at ? fact('Scheduled', 'task-scheduled', timeEl(t.scheduled_at, t.state === 'scheduled' ? 'both-until' : 'both')) : null,
        fact('Started', 'task-started', timeEl(t.started_at, 'both'), waited !== null ? h('span', { class: 'muted' }, ` waited ${duration(waited)}`) : null),
        fact('Finished', 'task-finished', timeEl(t.finished_at, 'both'), ran !== null ? h('span', { class: 'muted' }, ` ran ${duration(ran)}`) : null),
        fact('Worker', 'task-worker', t.worker ? [t.worker.name, t.worker.missing ? h('span', { class: 'badge warn' }, 'missing') : null] : h('span', { class: 'none' }, '—')),
        fact('Owner', 'task-owner', t.owner || h('span', { class: 'none' }, '— (open mode)')),
        groupId ? fact('Group', 'task-group', h('a', { href: `#/groups/${groupId}`, title: groupId }, groups.get(groupId) || groupId)) : null,
        parentId ? fact('Parent', 'task-parent', linkToTask(parentId)) : null,
        retryOfId ? fact('Retry of', 'task-retry-of', linkToTask(retryOfId)) : null,
        t.retry ? fact('Retries', 'task-retry', retryText(t.retry)) : null,
        typeof t.unique_key === 'string' ? fact('Unique key', 'task-unique-key', h('code', {}, t.unique_key)) : null,
        fact('Id', 'task-id', h('span', { class: 'mono' }, t.id))));
    });

    fill(slots.blocked, { state: t.state, by: t.blocked_by, names: (t.blocked_by || []).map((b) => names.get(idOf(b.task))) }, () => {
      if (t.state !== 'waiting') return null;
      const by = t.blocked_by || [];
      return section('task-blocked-by', 'Why it waits', by.length
        ? h('ul', { class: 'blockers' }, by.map(blockerItem))
        : h('p', {}, t.unblocked_at || !((t.exclusive_resources || []).length || (t.shared_resources || []).length)
          ? 'Waiting for a free worker.'
          : 'Its resources are held by earlier tasks you cannot see.'));
    });

    fill(slots.progress, t.progress_reports, () => section('task-progress', 'Progress',
      (t.progress_reports || []).length
        ? (t.progress_reports || []).map((r) => h('div', { class: 'progress-report', 'data-code': r.code, 'data-report-state': r.state || null },
          h('div', { class: 'progress-line' },
            h('span', { class: 'progress-message' }, r.message || r.code),
            h('span', { class: 'progress-text' }, progressText(r)),
            r.state ? h('span', { class: 'progress-state' }, r.state) : null),
          progressEl(r, r.message || r.code)))
        : none('No progress reported.')));

    fill(slots.error, t.error, () => (t.error ? section('task-error', 'Error',
      h('p', {}, errorLine(t.error)),
      t.error.traceback
        ? h('pre', { class: 'traceback', tabindex: '0', 'aria-label': 'Traceback' }, t.error.traceback)
        : h('pre', { class: 'traceback none' }, '(no traceback)')) : null));

    fill(slots.attempts, [t.state, t.attempts, t.retry, t.scheduled_at], () => attemptsSection(t));

    fill(slots.nonFatal, t.non_fatal_errors, () => {
      const errs = t.non_fatal_errors || [];
      return section('task-non-fatal-errors', `Non-fatal errors (${errs.length})`, errs.length
        ? h('ul', { class: 'errors' }, errs.map((e) => h('li', {},
          errorLine(e),
          e.traceback ? h('details', {}, h('summary', {}, 'Traceback'), h('pre', { class: 'traceback', tabindex: '0' }, e.traceback)) : null)))
        : none());
    });

    fill(slots.result, { state: t.state, result: t.result }, () => (t.result !== null || t.state === 'completed'
      ? section('task-result', 'Result', codeBlock(json(t.result), 'Result as JSON')) : null));
    fill(slots.args, t.args, () => section('task-args', 'Arguments', codeBlock(json(t.args), 'Arguments as JSON')));

    fill(slots.resources, [t.exclusive_resources, t.shared_resources, t.created_resources, t.versions], () => {
      const list = (cls, title, items, link = false) => h('div', { class: cls }, h('h3', {}, title),
        items && items.length ? h('ul', { class: 'plain' }, items.map((r) => h('li', {}, link ? resourceLink(r) : h('code', {}, r)))) : none());
      const versions = Object.entries(t.versions || {});
      // The resources it holds or waits for link to their pages; created
      // ones and versions are only recorded.
      return section('task-resources', 'Resources',
        list('exclusive', 'Exclusive', t.exclusive_resources, true),
        list('shared', 'Shared', t.shared_resources, true),
        (t.created_resources || []).length ? list('created', 'Created', t.created_resources) : null,
        versions.length ? list('versions', 'Requires versions', versions.map(([k, v]) => `${k} ≥ ${v}`)) : null);
    });

    const childIds = (t.child_tasks || []).map(idOf);
    fill(slots.children, childIds.map((c) => [c, children.get(c)]), () => section('task-children', `Children (${childIds.length})`,
      childIds.length
        ? h('ul', { class: 'children' }, childIds.map((c) => {
          const info = children.get(c);
          return h('li', {}, h('a', { href: `#/tasks/${c}`, title: c }, info ? `${info.name} ${shortId(c)}` : c),
            info ? [' ', stateBadge(info.state)] : null);
        }))
        : none()));
  }

  // follow (re)opens the stream when the set of tasks to follow changed.
  function follow() {
    const ids = [id, ...(task ? (task.child_tasks || []).map(idOf).slice(0, MAX_FOLLOWED_CHILDREN) : [])];
    const q = api.query({ task: ids });
    if (q === streamQuery) return;
    streamQuery = q;
    if (stream) stream.stop();
    stream = api.follow(q, { onEvent, onConnected: reload });
  }

  function onEvent(ev) {
    if (ev.id === id) {
      lastEvent = ev;
      if (!task) return;
      const before = task.state;
      task = { ...task, state: ev.state, progress_reports: ev.progress_reports, updated_at: ev.updated_at };
      render();
      if (before !== ev.state) reload();
    } else if (children.has(ev.id) || (task && (task.child_tasks || []).some((c) => idOf(c) === ev.id))) {
      children.set(ev.id, { name: ev.name, state: ev.state });
      if (task) render();
    }
  }

  async function load() {
    const mine = ++seq;
    clearTimeout(pollTimer);
    let t;
    try {
      t = await api.get(`/tasks/${encodeURIComponent(id)}`, { signal: aborter.signal });
    } catch (err) {
      if (api.isAbort(err) || mine !== seq || err.status === 401) return;
      if (err.status === 404 || err.status === 400) {
        notFound(err);
        return;
      }
      ctx.flash(`Could not read the task: ${err.detail || err.message}`);
      pollTimer = setTimeout(reload, WAITING_POLL_MS);
      return;
    }
    if (mine !== seq) return;
    if (lastEvent && newer(lastEvent.updated_at, t.updated_at)) {
      t = { ...t, state: lastEvent.state, progress_reports: lastEvent.progress_reports };
    }
    task = t;
    // The names of linked tasks first, so that links appear once, in their
    // final form, rather than being rebuilt under a pointer about to click.
    await loadNames(t);
    if (mine !== seq) return;
    render();
    follow();
    if (t.state === 'waiting') pollTimer = setTimeout(reload, WAITING_POLL_MS); // blockers change without an event of this task
  }

  // loadNames reads the names of linked tasks and groups, once each, and
  // the names and states of the children.
  async function loadNames(t) {
    const want = [idOf(t.parent_task), idOf(t.retry_of), ...(t.blocked_by || []).map((b) => idOf(b.task))].filter((x) => x && !names.has(x)).slice(0, 20);
    const reads = want.map((x) => api.get(`/tasks/${x}`, { signal: aborter.signal }).then((o) => names.set(x, o.name), () => names.set(x, '')));
    const g = idOf(t.task_group);
    if (g && !groups.has(g)) {
      reads.push(api.get(`/task-groups/${g}`, { signal: aborter.signal }).then((o) => groups.set(g, o.description), () => groups.set(g, '')));
    }
    if ((t.child_tasks || []).length) {
      reads.push(api.get(`/tasks${api.query({ parent_task: id, ordering: 'created_at', limit: 1000 })}`, { signal: aborter.signal })
        .then((page) => { children = new Map(page.results.map((c) => [c.id, { name: c.name, state: c.state }])); }, () => {}));
    }
    await Promise.all(reads);
  }

  function notFound(err) {
    gone = true;
    if (stream) stream.stop();
    root.replaceChildren(h('div', { class: 'page-head' }, h('h1', { id: 'task-name' }, 'No such task')),
      h('p', { class: 'notice' }, err.detail), h('p', {}, h('a', { href: '#/tasks' }, 'All tasks')));
  }

  async function cancel() {
    const t = task;
    const yes = await ctx.confirm({
      title: 'Cancel this task?',
      text: `${t.name} (${t.id}) is ${t.state}. ${['scheduled', 'waiting'].includes(t.state) ? 'It will be canceled at once and never run.' : 'Its worker will be asked to stop it.'}`,
      yes: 'Cancel task',
      no: 'Keep it',
    });
    if (!yes || gone) return;
    const button = document.getElementById('cancel-task');
    if (button) button.disabled = true;
    try {
      const updated = await api.patch(`/tasks/${encodeURIComponent(id)}`, { state: 'canceled' }, { signal: aborter.signal });
      ctx.clearFlash();
      if (!lastEvent || !newer(lastEvent.updated_at, updated.updated_at)) {
        task = updated;
        render();
      }
    } catch (err) {
      if (api.isAbort(err) || err.status === 401) return;
      ctx.flash(`Could not cancel the task: ${err.detail || err.message}`);
      if (button) button.disabled = false;
      reload();
    }
    if (!document.getElementById('cancel-task')) {
      // The button is gone with the state that allowed it: keep focus in the page.
      const heading = document.getElementById('task-name');
      if (heading) {
        heading.tabIndex = -1;
        heading.focus();
      }
    }
  }

  // retry runs the task again as a new task (POST …/retry), and shows it.
  async function retry() {
    const button = document.getElementById('retry-task');
    if (button) button.disabled = true;
    let ref;
    try {
      ref = await api.post(`/tasks/${encodeURIComponent(id)}/retry`, undefined, { signal: aborter.signal });
    } catch (err) {
      if (api.isAbort(err) || err.status === 401) return;
      ctx.flash(`Could not retry the task: ${err.detail || err.message}`);
      if (button) button.disabled = false;
      reload();
      return;
    }
    if (gone) return;
    ctx.clearFlash();
    location.hash = `#/tasks/${idOf(ref.task)}`;
  }

  return {
    mount(parent) {
      parent.append(root);
      follow();
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
