// The one way the client talks to the broker: same-origin fetch with the session cookie and
// the CSRF token, errors turned into ApiError with the broker's code and a human message.
import { formatWait } from './i18n/format.ts';
import { t } from './i18n/index.ts';

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
    throw new ApiError(0, 'network', t('api.network'), 5);
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
  // "Try again in …" when the broker said how long, else each case's own advice.
  const tryAgain = e.retryAfter ? t('api.tryAgainIn', { wait: formatWait(e.retryAfter) }) : '';
  const wait = (advice: string) => ` ${tryAgain || t(advice)}`;
  switch (e.code) {
    case 'invalid_credentials':
      return t('api.invalidCredentials');
    case 'account_locked':
      return t('api.accountLocked') + wait('api.tryLaterOrHelpdesk');
    case 'login_throttled':
      return t('api.loginThrottled') + wait('api.waitMoment');
    case 'too_many_attempts':
      return t('api.tooManyAttempts') + wait('api.waitMinutes');
    case 'redis_unavailable':
    case 'not_ready':
      return t('api.brokerTrouble', { code: e.code }) + wait('api.tryAgainMoment');
    case 'network':
      return e.message;
    case 'unauthenticated':
      return t('api.unauthenticated');
    case 'forbidden':
      return t('api.forbidden');
    case 'pool_exhausted':
      return t('api.poolExhausted');
    case 'pool_maintenance':
      return t('api.poolMaintenance');
    case 'pool_disabled':
      return t('api.poolDisabled');
    default:
      if (e.status >= 500) return t('api.brokerFailed', { code: e.code, message: e.message }) + (tryAgain && ` ${tryAgain}`);
      return e.message;
  }
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
  if (/^Too small: expected string to have >=1 characters?$/.test(m) || m === 'Required.' || /received undefined$/.test(m)) m = t('field.required');
  else if ((r = /^Too small: expected string to have >=(\d+) characters$/.exec(m))) m = t('field.minChars', { count: Number(r[1]) });
  else if ((r = /^Too big: expected string to have <=(\d+) characters$/.exec(m))) m = t('field.maxChars', { count: Number(r[1]) });
  else if ((r = /^Too small: expected number to be >=(\S+)$/.exec(m))) m = t('field.min', { n: r[1] });
  else if ((r = /^Too big: expected number to be <=(\S+)$/.exec(m))) m = t('field.max', { n: r[1] });
  else if (/^Invalid string: must match pattern/.test(m)) m = t('field.pattern');
  else if ((r = /^Invalid option: expected one of (.*)$/.exec(m))) m = t('field.oneOf', { options: r[1]!.replace(/"/g, '').split('|').join(', ') });
  else if (/^Invalid input: expected number/.test(m)) m = t('field.number');
  return { field: e.field, message: m.charAt(0).toUpperCase() + m.slice(1) };
}

/** One page of a helpdesk list (GET /desktops, /sessions, /users with `limit`). */
export interface ListAnswer<T> { items: T[]; total: number; nextCursor?: string }

/** Per-id outcome of POST /desktops/bulk and /sessions/bulk. */
export interface BulkAnswer { results: { id: string; ok: boolean; error?: { code: string; message: string } }[] }

export const bulkDesktops = (action: 'refresh' | 'reset' | 'delete', ids: string[]) => api.post<BulkAnswer>('/desktops/bulk', { action, ids });
export const bulkLogoff = (ids: string[]) => api.post<BulkAnswer>('/sessions/bulk', { action: 'logoff', ids });
