// Internationalisation: every user-facing string of the client comes from one catalogue
// (en.json, de.json: identical key sets, test/client/i18n-catalogue.test.ts checks it) through
// i18next. The language is the one picked in the page header (kept in localStorage under
// `vdi.lang`), else the browser's (navigator.languages), else English. `<html lang>` follows.
// Components call useT(), which re-renders them when the language changes.
import i18next, { type TFunction } from 'i18next';
import LanguageDetector from 'i18next-browser-languagedetector';
import type { ComponentChild } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import en from './en.json' with { type: 'json' };
import de from './de.json' with { type: 'json' };

export const LANGUAGES = [
  { code: 'en', name: 'English' },
  { code: 'de', name: 'Deutsch' },
] as const;
export type Language = (typeof LANGUAGES)[number]['code'];
export const LANG_STORAGE_KEY = 'vdi.lang';

void i18next.use(LanguageDetector).init({
  resources: { en: { translation: en }, de: { translation: de } },
  supportedLngs: LANGUAGES.map((l) => l.code),
  nonExplicitSupportedLngs: true,
  load: 'languageOnly',
  fallbackLng: 'en',
  initAsync: false,
  interpolation: { escapeValue: false },
  returnNull: false,
  detection: { order: ['localStorage', 'navigator'], lookupLocalStorage: LANG_STORAGE_KEY, caches: [] },
});

function applyLang(): void {
  if (typeof document !== 'undefined') document.documentElement.lang = language();
}
i18next.on('languageChanged', applyLang);
applyLang();

/** The language in use: 'en' or 'de'. */
export function language(): Language {
  const l = (i18next.resolvedLanguage ?? i18next.language ?? 'en').slice(0, 2);
  return (LANGUAGES.some((x) => x.code === l) ? l : 'en') as Language;
}

/** Switches the language (persisted for this browser). */
export function setLanguage(code: Language): void {
  try {
    localStorage.setItem(LANG_STORAGE_KEY, code);
  } catch {
    // storage disabled: the choice lasts for this page
  }
  void i18next.changeLanguage(code);
}

/** Translates outside components (strings built when something happens, not at module load). */
export const t = ((...args: unknown[]) => (i18next.t as unknown as (...a: unknown[]) => string)(...args)) as unknown as TFunction;

/**
 * A sentence with elements in it (a <code>, a link): each `{{name}}` of `parts` in the
 * translation becomes that element, so the sentence keeps its own language's word order.
 */
export function tParts(key: string, parts: Record<string, ComponentChild>, options: Record<string, unknown> = {}): ComponentChild[] {
  const marks = Object.fromEntries(Object.keys(parts).map((k) => [k, `\u0000${k}\u0000`]));
  return t(key, { ...options, ...marks }).split('\u0000').map((piece, i) => (i % 2 ? parts[piece] : piece));
}

/** The translation function for a component; the component re-renders on a language change. */
export function useT(): TFunction {
  const [, bump] = useState(0);
  useEffect(() => {
    const f = () => bump((n) => n + 1);
    i18next.on('languageChanged', f);
    return () => i18next.off('languageChanged', f);
  }, []);
  return t;
}

/** Subscribes to language changes (non-component code). */
export function onLanguage(fn: () => void): () => void {
  i18next.on('languageChanged', fn);
  return () => i18next.off('languageChanged', fn);
}
