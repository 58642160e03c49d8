// The one way the client talks to the broker: same-origin fetch with the session cookie and
// the CSRF token, errors turned into ApiError with the broker's code and a human message.
let csrf = '';

export function setCsrf(token: string | null | undefined): void {
  csrf = token ?? '';
}

/** For the few calls that are not JSON (file uploads). */
export function csrfToken(): string {
  return csrf;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds from the Retry-After header, if any. */
    readonly retryAfter: number | null,
    /** The request field the broker refused (validation errors), if any. */
    readonly field?: string,
  ) {
    super(message);
  }
}

export interface Answer<T> { status: number; body: T; retryAfter: number | null }

export async function call<T>(method: string, path: string, body?: unknown): Promise<Answer<T>> {
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      credentials: 'same-origin',
      headers: {
        accept: 'application/json',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(csrf && method !== 'GET' ? { 'x-csrf-token': csrf } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new ApiError(0, 'network', 'The broker cannot be reached. Check your network connection.', 5);
  }
  const ra = res.headers.get('retry-after');
  const retryAfter = ra && /^\d+$/.test(ra) ? Number(ra) : null;
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const e = (data as { error?: { code?: string; message?: string; field?: string } } | null)?.error;
    throw new ApiError(res.status, e?.code ?? `http_${res.status}`, e?.message ?? `HTTP ${res.status}`, retryAfter, e?.field);
  }
  return { status: res.status, body: data as T, retryAfter };
}

export const api = {
  get: async <T>(path: string) => (await call<T>('GET', path)).body,
  post: async <T>(path: string, body: unknown = {}) => (await call<T>('POST', path, body)).body,
  patch: async <T>(path: string, body: unknown) => (await call<T>('PATCH', path, body)).body,
  del: async <T>(path: string) => (await call<T>('DELETE', path)).body,
};

export const enc = encodeURIComponent;

/** What to tell a person about a failed call. */
export function describeError(e: unknown): string {
  if (!(e instanceof ApiError)) return e instanceof Error ? e.message : String(e);
  const wait = e.retryAfter ? ` Try again in ${formatWait(e.retryAfter)}.` : '';
  switch (e.code) {
    case 'invalid_credentials':
      return 'Wrong user name or password.';
    case 'account_locked':
      return `This account is locked after too many failed attempts.${wait || ' Try again later or ask the helpdesk.'}`;
    case 'login_throttled':
      return `Too many failed logins.${wait || ' Wait a moment.'}`;
    case 'too_many_attempts':
      return `Too many login attempts from here.${wait || ' Wait a few minutes.'}`;
    case 'redis_unavailable':
    case 'not_ready':
      return `The broker is having trouble right now (${e.code}); your desktops are safe.${wait || ' Try again in a moment.'}`;
    case 'network':
      return e.message;
    case 'unauthenticated':
      return 'Your login has expired. Please log in again.';
    case 'forbidden':
      return 'You are not allowed to do that.';
    case 'pool_exhausted':
      return 'All desktops of this pool are in use and it cannot grow. Try again later or ask the helpdesk.';
    case 'pool_maintenance':
      return 'This pool is in maintenance. Try again later.';
    case 'pool_disabled':
      return 'This pool is disabled.';
    default:
      if (e.status >= 500) return `The broker could not do that (${e.code}): ${e.message}${wait}`;
      return e.message;
  }
}

export function formatWait(s: number): string {
  if (s < 90) return `${s} s`;
  return `${Math.ceil(s / 60)} min`;
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

/**
 * A refused form field in plain words: the broker's validation message without the field path
 * and zod's wording ("host: Too small: expected string to have >=1 characters" -> "Required.").
 * null when the error is not about a field.
 */
export function fieldError(e: unknown): { field: string; message: string } | null {
  if (!(e instanceof ApiError) || !e.field) return null;
  let m = e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message;
  let r: RegExpExecArray | null;
  if (/^Too small: expected string to have >=1 characters?$/.test(m) || m === 'Required.' || /received undefined$/.test(m)) m = 'This field is required.';
  else if ((r = /^Too small: expected string to have >=(\d+) characters$/.exec(m))) m = `Use at least ${r[1]} characters.`;
  else if ((r = /^Too big: expected string to have <=(\d+) characters$/.exec(m))) m = `Use at most ${r[1]} characters.`;
  else if ((r = /^Too small: expected number to be >=(\S+)$/.exec(m))) m = `Enter ${r[1]} or more.`;
  else if ((r = /^Too big: expected number to be <=(\S+)$/.exec(m))) m = `Enter ${r[1]} or less.`;
  else if (/^Invalid string: must match pattern/.test(m)) m = 'This value has characters that are not allowed here.';
  else if ((r = /^Invalid option: expected one of (.*)$/.exec(m))) m = `Choose one of ${r[1]!.replace(/"/g, '').split('|').join(', ')}.`;
  else if (/^Invalid input: expected number/.test(m)) m = 'Enter a number.';
  return { field: e.field, message: m.charAt(0).toUpperCase() + m.slice(1) };
}

/** One page of a helpdesk list (GET /desktops, /sessions, /users with `limit`). */
export interface ListAnswer<T> { items: T[]; total: number; nextCursor?: string }

/** Per-id outcome of POST /desktops/bulk and /sessions/bulk. */
export interface BulkAnswer { results: { id: string; ok: boolean; error?: { code: string; message: string } }[] }

export const bulkDesktops = (action: 'refresh' | 'reset' | 'delete', ids: string[]) => api.post<BulkAnswer>('/desktops/bulk', { action, ids });
export const bulkLogoff = (ids: string[]) => api.post<BulkAnswer>('/sessions/bulk', { action: 'logoff', ids });
