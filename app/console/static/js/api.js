// The public API, as any client calls it: the person's bearer token, JSON, the one error shape.
import * as session from './session.js';

export class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error || {};
    super(error.message || `request failed (${status})`);
    this.status = status;
    this.code = error.code || 'error';
    this.details = error.details || null;
    this.requestId = error.requestId || null;
  }
}

export async function api(method, path, body, { retried = false } = {}) {
  const headers = { Accept: 'application/json' };
  const token = session.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, { error: { code: 'network', message: 'the service cannot be reached' } });
  }
  if (response.status === 401 && !retried) {
    const data = await response.clone().json().catch(() => ({}));
    if (['token_expired', 'invalid_token', 'missing_credentials'].includes(data?.error?.code)) {
      await session.refresh();
      return api(method, path, body, { retried: true });
    }
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body ?? {});
export const patch = (path, body) => api('PATCH', path, body);

export function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '');
  return pairs.length ? `?${new URLSearchParams(pairs)}` : '';
}

// Field errors of a 422, flattened to "field.sub: message" lines.
export function fieldErrors(details, prefix = '') {
  const out = [];
  if (!details || typeof details !== 'object') return out;
  for (const [key, value] of Object.entries(details)) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) out.push([name, value.join(' ')]);
    else if (Array.isArray(value)) value.forEach((v, i) => out.push(...fieldErrors(v, `${name}.${i}`)));
    else if (typeof value === 'object') out.push(...fieldErrors(value, name));
    else out.push([name, String(value)]);
  }
  return out;
}
