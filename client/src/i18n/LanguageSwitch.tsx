// The language switch in the page header (and on the login page).
import { LANGUAGES, language, setLanguage, useT, type Language } from './index.ts';

export function LanguageSwitch(props: { class?: string }) {
  const t = useT();
  return (
    <select class={props.class ?? 'lang'} aria-label={t('lang.label')} value={language()} data-testid="language" onChange={(e) => setLanguage((e.target as HTMLSelectElement).value as Language)}>
      {LANGUAGES.map((l) => <option key={l.code} value={l.code} lang={l.code}>{l.name}</option>)}
    </select>
  );
}
