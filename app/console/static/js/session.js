// The signed-in person. The access token lives in this module's memory only (never in storage
// a script could read later, never in a URL); the refresh token is an HttpOnly cookie the
// service sets on /console/auth, which this code cannot read. A reload asks /console/auth/refresh
// for a new access token; it is refreshed a minute before it expires.

let current = null; // {accessToken, expiresAt, person: {email, role, id, clientId}}
let timer = null;
const listeners = new Set();

export class AuthError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `sign-in failed (${status})`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

async function call(path, body, headers = {}) {
  const response = await fetch(`/console/auth/${path}`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body || {}),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new AuthError(response.status, data);
  return data;
}

function claims(token) {
  try {
    const part = token.split('.')[1].replaceAll('-', '+').replaceAll('_', '/');
    return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return {};
  }
}

function adopt(data) {
  const c = claims(data.accessToken);
  const meta = c.app_metadata || {};
  current = {
    accessToken: data.accessToken,
    expiresAt: data.expiresAt,
    person: { email: c.email || data.person?.email, role: meta.role || data.person?.role, id: c.sub,
              clientId: meta.client_id || null },
  };
  clearTimeout(timer);
  const wait = Math.max(5, data.expiresAt - Date.now() / 1000 - 60) * 1000;
  timer = setTimeout(() => refresh().catch(() => signedOut()), Math.min(wait, 2 ** 31 - 1));
  for (const listener of listeners) listener(current);
  return current;
}

function signedOut() {
  current = null;
  clearTimeout(timer);
  for (const listener of listeners) listener(null);
}

export function onChange(listener) {
  listeners.add(listener);
}

export function person() {
  return current?.person || null;
}

export function token() {
  return current?.accessToken || null;
}

export function isHil() {
  return ['hil_operator', 'hil_manager'].includes(current?.person?.role);
}

export function isManager() {
  return current?.person?.role === 'hil_manager';
}

export async function withPassword(email, password) {
  return adopt(await call('password', { email, password }));
}

export async function withCode(code) {
  return adopt(await call('code', { code }));
}

let refreshing = null;
export function refresh() {
  refreshing ||= call('refresh').then(adopt).finally(() => { refreshing = null; });
  return refreshing;
}

export async function signOut() {
  const headers = current ? { Authorization: `Bearer ${current.accessToken}` } : {};
  try {
    await call('sign-out', {}, headers);
  } finally {
    signedOut();
  }
}
