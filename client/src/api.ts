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
    const e = (data as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(res.status, e?.code ?? `http_${res.status}`, e?.message ?? `HTTP ${res.status}`, retryAfter);
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
