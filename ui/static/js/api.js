// api.js: the public HTTP API (/api/v1) and its event stream. The token
// lives in sessionStorage only: never localStorage, never a URL.

const TOKEN_KEY = 'stint.token';
const BASE = '/api/v1';

export const token = {
  get() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch {
      return '';
    }
  },
  set(value) {
    sessionStorage.setItem(TOKEN_KEY, value);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

// ApiError is a refused or failed request: status 0 when the server could
// not be reached, detail the API's {"detail"}.
// sent is the token the request carried ('' for none).
export class ApiError extends Error {
  constructor(status, detail, sent = '') {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.sent = sent;
  }
}

let unauthorized = () => {};

// onUnauthorized sets what happens on a 401 anywhere: the app shows the
// sign-in form.
export function onUnauthorized(fn) {
  unauthorized = fn;
}

function headers(extra = {}) {
  const h = { Accept: 'application/json', ...extra };
  const t = token.get();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function detailOf(res) {
  try {
    const data = await res.json();
    if (data && typeof data.detail === 'string') return data.detail;
  } catch {
    // not JSON
  }
  return `${res.status} ${res.statusText}`.trim();
}

// request sends one API request and returns the decoded JSON answer.
// options: body (sent as JSON), signal, quiet401 (do not call the
// unauthorized handler: the sign-in form checks a token itself).
export async function request(method, path, { body, signal, quiet401 = false } = {}) {
  const sent = token.get();
  let res;
  try {
    res = await fetch(BASE + path, {
      method,
      headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'the server could not be reached');
  }
  if (!res.ok) {
    const err = new ApiError(res.status, await detailOf(res), sent);
    if (res.status === 401 && !quiet401) unauthorized(err);
    throw err;
  }
  if (res.status === 204) return null;
  return res.json();
}

export const get = (path, options) => request('GET', path, options);
export const patch = (path, body, options) => request('PATCH', path, { ...options, body });
export const post = (path, body, options) => request('POST', path, { ...options, body });

// query builds "?a=1&b=2" from the non-empty values of an object.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else if (v !== '' && v !== null && v !== undefined) q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export function isAbort(err) {
  return err && err.name === 'AbortError';
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

let statusListener = () => {};

// onStreamStatus sets who hears of the streams' state: "live",
// "reconnecting" or "" (no stream).
export function onStreamStatus(fn) {
  statusListener = fn;
}

// follow reads GET /api/v1/events{q} with fetch() and a streaming body
// reader (EventSource cannot send the Authorization header). It calls
// onEvent(data) for each `task` event and onConnected() each time the
// subscription is in place (the ": connected" line): first, and after each
// reconnection, when what is shown must be read again; and at a `resync`
// event, when the server says that changes may have been lost. It reconnects with
// back-off (1 s doubling to 30 s, with jitter) until stop() is called;
// a 401 goes to the unauthorized handler and ends it.
export function follow(q, { onEvent, onConnected }) {
  const ctrl = new AbortController();
  let failures = 0;
  const loop = async () => {
    while (!ctrl.signal.aborted) {
      let res = null;
      const sent = token.get();
      try {
        res = await fetch(`${BASE}/events${q}`, {
          headers: headers({ Accept: 'text/event-stream' }),
          signal: ctrl.signal,
          cache: 'no-store',
          credentials: 'omit',
        });
      } catch {
        res = null;
      }
      if (ctrl.signal.aborted) return;
      if (res && res.status === 401) {
        statusListener('');
        unauthorized(new ApiError(401, await detailOf(res), sent));
        return;
      }
      if (res && res.ok && res.body) {
        try {
          await readEvents(res.body, ctrl.signal, {
            comment(text) {
              if (text === 'connected') {
                failures = 0;
                statusListener('live');
                onConnected();
              }
            },
            event(type, data) {
              // resync: changes may have been lost (the server's listener
              // to the database reconnected): read what is shown again.
              if (type === 'resync') {
                onConnected();
                return;
              }
              if (type !== 'task') return;
              let ev;
              try {
                ev = JSON.parse(data);
              } catch {
                return;
              }
              onEvent(ev);
            },
          });
        } catch {
          // the connection broke: reconnect
        }
      } else if (res && res.status >= 400 && res.status < 500 && res.status !== 429) {
        console.error(`events: ${res.status} ${await detailOf(res)}`);
        statusListener('');
        return; // retrying the same request will not help
      }
      if (ctrl.signal.aborted) return;
      statusListener('reconnecting');
      const delay = Math.min(30000, 1000 * 2 ** failures) * (0.75 + Math.random() / 2);
      failures = Math.min(failures + 1, 5);
      await sleep(delay, ctrl.signal);
    }
  };
  loop();
  return {
    stop() {
      ctrl.abort();
      statusListener('');
    },
  };
}

// readEvents parses a text/event-stream body until it ends.
async function readEvents(body, signal, on) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener('abort', () => reader.cancel().catch(() => {}), { once: true });
  let buffer = '';
  let type = '';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      let line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (data.length) on.event(type || 'message', data.join('\n'));
        type = '';
        data = [];
      } else if (line.startsWith(':')) {
        on.comment(line.slice(1).trim());
      } else {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') type = val;
        else if (field === 'data') data.push(val);
      }
    }
  }
}
