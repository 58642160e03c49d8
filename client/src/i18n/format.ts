// Dates, times, numbers, byte sizes and durations in the user's language (Intl), the one place
// the client formats them.
import { language, t } from './index.ts';

type When = number | string | Date | null | undefined;
const toDate = (v: Exclude<When, null | undefined>) => (v instanceof Date ? v : new Date(v));
/** The Intl locale: German, or the browser's English variant (en-US, en-GB...), else British English. */
const locale = () => (language() === 'de' ? 'de-DE' : typeof navigator !== 'undefined' && /^en\b/.test(navigator.language) ? navigator.language : 'en-GB');

/** Date and time, e.g. "12/1/2026, 1:05:09 PM" (en-US) / "1.12.2026, 13:05:09" (de); '—' for none. */
export function formatDateTime(v: When): string {
  return v ? toDate(v).toLocaleString(locale()) : '—';
}

/** Time of day. */
export function formatTime(v: When): string {
  return v ? toDate(v).toLocaleTimeString(locale()) : '—';
}

/** Calendar date. */
export function formatDate(v: When): string {
  return v ? toDate(v).toLocaleDateString(locale()) : '—';
}

/** A number with the language's separators. */
export function formatNumber(n: number, digits?: number): string {
  return new Intl.NumberFormat(locale(), digits === undefined ? {} : { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(n);
}

const fixed = (n: number, d: number) => new Intl.NumberFormat(locale(), { minimumFractionDigits: d, maximumFractionDigits: d, useGrouping: false }).format(n);

/** A byte count in binary units: "512 B", "1.5 KiB" ("1,5 KiB" in German). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${fixed(n, 0)} B`;
  if (n < 1024 ** 2) return `${fixed(n / 1024, 1)} KiB`;
  if (n < 1024 ** 3) return `${fixed(n / 1024 ** 2, 1)} MiB`;
  return `${fixed(n / 1024 ** 3, 2)} GiB`;
}

/** A duration: "42 s", "3 min 5 s", "2 h 7 min". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? t('units.hMin', { h, m }) : m ? t('units.minS', { m, s: s % 60 }) : t('units.s', { s });
}

/** A wait the broker asked for (Retry-After seconds): "45 s", "3 min". */
export function formatWait(s: number): string {
  return s < 90 ? t('units.s', { s: formatNumber(s) }) : t('units.min', { m: formatNumber(Math.ceil(s / 60)) });
}

/** Milliseconds, short: "850 ms", "2.35 s". */
export function formatMs(ms: number): string {
  return ms < 1000 ? `${fixed(ms, 0)} ms` : `${fixed(ms / 1000, ms < 10_000 ? 2 : 1)} s`;
}
