// app.js: the UI's entry point. It asks the API who the viewer is, shows
// the sign-in form on a 401, and routes by the URL's fragment:
//   #/tasks?state=&name=&worker=&task_group=&owner=&ordering=&offset=
//   #/tasks/<id>   #/groups   #/groups/<id>   #/workers
//   #/resources?name=&busy=&offset=   #/resources/<name, encoded>
// Each page is an object with mount(root, route), unmount() and,
// optionally, update(route) for a new query on the same page.

import * as api from './api.js';
import { h, startTicker } from './dom.js';
import { tasksPage } from './tasks.js';
import { taskPage } from './task.js';
import { groupsPage, groupPage } from './groups.js';
import { workersPage } from './workers.js';
import { resourcesPage, resourcePage } from './resources.js';

const PAGES = {
  tasks: { make: tasksPage, nav: 'tasks', title: 'Tasks' },
  task: { make: taskPage, nav: 'tasks', title: 'Task' },
  groups: { make: groupsPage, nav: 'groups', title: 'Groups' },
  group: { make: groupPage, nav: 'groups', title: 'Group' },
  workers: { make: workersPage, nav: 'workers', title: 'Workers' },
  resources: { make: resourcesPage, nav: 'resources', title: 'Resources' },
  resource: { make: resourcePage, nav: 'resources', title: 'Resource' },
};

const main = document.getElementById('main');
const flashWrap = document.getElementById('flash-wrap');
const flashEl = document.getElementById('flash');

// ctx is what pages get: the viewer, and the app's shared parts.
const ctx = {
  me: null,
  // mayCancel: admin, or cancel_policy "owner" and the viewer owns it.
  mayCancel(owner) {
    const me = ctx.me;
    if (!me) return false;
    return me.role === 'admin' || (me.cancel_policy === 'owner' && owner === me.user);
  },
  flash(message) {
    flashEl.textContent = message;
    flashWrap.hidden = false;
  },
  clearFlash() {
    flashEl.textContent = '';
    flashWrap.hidden = true;
  },
  confirm,
  setTitle(text) {
    document.title = text ? `${text} · Stint` : 'Stint';
  },
};

let current = null; // { kind, id, page }
let firstRoute = true;

function parseRoute() {
  const hash = location.hash.replace(/^#/, '');
  if (!hash.startsWith('/')) return null;
  const q = hash.indexOf('?');
  const path = q < 0 ? hash : hash.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
  let parts;
  try {
    parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return null;
  }
  const [section, id, ...rest] = parts;
  if (rest.length) return null;
  if (section === 'tasks') return id ? { kind: 'task', id, params } : { kind: 'tasks', params };
  if (section === 'groups') return id ? { kind: 'group', id, params } : { kind: 'groups', params };
  if (section === 'workers' && !id) return { kind: 'workers', params };
  if (section === 'resources') return id ? { kind: 'resource', id, params } : { kind: 'resources', params };
  return null;
}

function unmount() {
  if (current) {
    current.page.unmount();
    current = null;
  }
}

function route() {
  let r = parseRoute();
  if (!r) {
    history.replaceState(null, '', '#/tasks');
    r = parseRoute();
  }
  if (!ctx.me) return; // signing in or loading: the route is kept in the URL
  const spec = PAGES[r.kind];
  for (const a of document.querySelectorAll('.site-header nav a')) {
    if (a.getAttribute('href') === `#/${spec.nav}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (current && current.kind === r.kind && current.id === r.id) {
    if (current.page.update) current.page.update(r);
    return;
  }
  unmount();
  ctx.clearFlash();
  ctx.setTitle(spec.title);
  const page = spec.make(ctx, r);
  main.replaceChildren();
  page.mount(main, r);
  current = { kind: r.kind, id: r.id, page };
  if (!firstRoute) {
    // Tell assistive technology where it landed.
    const heading = main.querySelector('h1');
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
    window.scrollTo(0, 0);
  }
  firstRoute = false;
}

// --- The viewer ---

function showViewer() {
  const viewer = document.getElementById('viewer');
  const role = document.getElementById('viewer-role');
  const me = ctx.me;
  if (!me) {
    viewer.textContent = 'not signed in';
    role.hidden = true;
  } else if (me.open) {
    viewer.textContent = 'open mode';
    viewer.title = 'This server has no users: anyone who reaches it acts as an admin.';
    role.hidden = true;
  } else {
    viewer.textContent = me.user;
    viewer.removeAttribute('title');
    role.textContent = me.role;
    role.hidden = false;
  }
  document.getElementById('sign-out').hidden = !api.token.get();
}

async function loadViewer() {
  try {
    ctx.me = await api.get('/me', { quiet401: true });
  } catch (err) {
    if (err.status === 401) {
      showSignIn(err);
      return;
    }
    showUnreachable(err);
    return;
  }
  showViewer();
  route();
}

function showUnreachable(err) {
  unmount();
  const retry = h('button', { type: 'button', onclick: () => loadViewer() }, 'Try again');
  main.replaceChildren(h('section', { class: 'notice-page' },
    h('h1', {}, 'Stint is not answering'),
    h('p', { class: 'notice' }, `Could not ask the server who you are: ${err.detail || err.message}.`),
    retry));
}

// --- Sign-in ---

// showSignIn shows the sign-in form in place of the page, on a 401. A
// stored token that was refused is dropped, and the API's detail shown; a
// token stored since the refused request was sent is kept.
function showSignIn(err) {
  const refused = !!(err && err.sent) && err.sent === api.token.get();
  if (refused) api.token.clear();
  unmount();
  ctx.me = null;
  showViewer();
  ctx.setTitle('Sign in');
  let form = document.getElementById('sign-in');
  if (!form) {
    form = signInForm();
    main.replaceChildren(h('section', { id: 'sign-in-page', class: 'sign-in-page' },
      h('h1', {}, 'Sign in'),
      h('p', {}, 'This Stint server needs a token. ',
        'An admin makes one with ', h('code', {}, 'stint user add NAME'), ' or ', h('code', {}, 'stint user token NAME'), '. ',
        'It is kept in this browser tab only, until you sign out or close the tab.'),
      form));
  }
  const error = document.getElementById('sign-in-error');
  if (refused && err.detail) {
    error.textContent = err.detail;
    error.hidden = false;
  }
  document.getElementById('token').focus();
}

function signInForm() {
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', required: true, autocomplete: 'off',
    spellcheck: 'false', autocapitalize: 'off', 'aria-describedby': 'sign-in-error',
  });
  const error = h('p', { id: 'sign-in-error', class: 'form-error', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { id: 'sign-in', class: 'card' },
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'Token'), input),
    error,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = input.value.trim();
    if (!value) {
      error.textContent = 'Enter a token.';
      error.hidden = false;
      input.focus();
      return;
    }
    submit.disabled = true;
    api.token.set(value);
    try {
      ctx.me = await api.get('/me', { quiet401: true });
    } catch (err) {
      api.token.clear();
      error.textContent = err.detail || err.message;
      error.hidden = false;
      submit.disabled = false;
      input.select();
      input.focus();
      return;
    }
    showViewer();
    main.replaceChildren();
    route(); // the page that was asked for
  });
  return form;
}

function signOut() {
  api.token.clear();
  unmount();
  ctx.me = null;
  ctx.clearFlash();
  showViewer();
  main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
  loadViewer(); // open mode goes on without a token; otherwise the sign-in form
}

// --- The confirmation dialog ---

const dialog = document.getElementById('confirm-cancel');

// confirm asks a yes/no question in dialog#confirm-cancel and resolves to
// true for yes. Escape or "no" is no.
function confirm({ title, text, yes, no }) {
  document.getElementById('confirm-cancel-title').textContent = title;
  document.getElementById('confirm-cancel-text').textContent = text;
  document.getElementById('confirm-cancel-yes').textContent = yes;
  document.getElementById('confirm-cancel-no').textContent = no;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
    dialog.showModal();
    document.getElementById('confirm-cancel-no').focus();
  });
}

// --- Start ---

function start() {
  api.onUnauthorized((err) => showSignIn(err));
  api.onStreamStatus((status) => {
    const el = document.getElementById('live-status');
    el.hidden = !status;
    el.dataset.status = status;
    el.textContent = status === 'live' ? 'Live' : status === 'reconnecting' ? 'Reconnecting…' : '';
    el.title = status === 'live' ? 'Updates arrive as they happen' : 'The update stream was lost; reconnecting';
  });
  document.getElementById('sign-out').addEventListener('click', signOut);
  document.getElementById('flash-close').addEventListener('click', () => ctx.clearFlash());
  document.getElementById('skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    main.focus();
  });
  document.getElementById('confirm-cancel-yes').addEventListener('click', () => dialog.close('yes'));
  document.getElementById('confirm-cancel-no').addEventListener('click', () => dialog.close('no'));
  window.addEventListener('hashchange', route);
  startTicker();
  if (!parseRoute()) history.replaceState(null, '', '#/tasks');
  showViewer();
  loadViewer();
}

start();
