// Doctor (admins): runs GET /api/v1/doctor on demand and lists what is wrong and how to fix it,
// failures first (docs/doctor.md).
import { useState } from 'preact/hooks';
import { api, describeError } from '../api.ts';
import { ErrorLine } from '../ui.tsx';
import { useT } from '../i18n/index.ts';
import { formatTime } from '../i18n/format.ts';

const STATUS = { ok: 'doctor.ok', warn: 'doctor.warn', fail: 'doctor.fail', skipped: 'doctor.skipped' } as const;

interface Check { id: string; target: string; status: 'ok' | 'warn' | 'fail' | 'skipped'; message: string; fix?: string; details?: Record<string, unknown> }
interface Report { version: 1; ranAt: string; durationMs: number; summary: { ok: number; warn: number; fail: number }; checks: Check[] }

const ORDER = { fail: 0, warn: 1, ok: 2, skipped: 3 } as const;


export function Doctor() {
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [showOk, setShowOk] = useState(false);
  const t = useT();
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      setReport(await api.get<Report>('/doctor'));
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };
  const rows = (report?.checks ?? []).filter((c) => showOk || c.status === 'fail' || c.status === 'warn').sort((a, b) => ORDER[a.status] - ORDER[b.status]);
  return (
    <section>
      <h1>{t('nav.doctor')}</h1>
      <p class="muted">{t('doctor.intro')}</p>
      <p>
        <button type="button" onClick={run} disabled={busy} data-testid="doctor-run">{busy ? t('doctor.checking') : report ? t('doctor.runAgain') : t('doctor.run')}</button>{' '}
        <label><input type="checkbox" checked={showOk} onChange={(e) => setShowOk((e.target as HTMLInputElement).checked)} /> {t('doctor.showOk')}</label>
      </p>
      <ErrorLine error={error} />
      {report && (
        <p data-testid="doctor-summary" class={report.summary.fail ? 'bad' : undefined}>
          {t('doctor.summary', { fail: report.summary.fail, warn: report.summary.warn, ok: report.summary.ok, time: formatTime(report.ranAt), ms: report.durationMs })}
        </p>
      )}
      {report && rows.length === 0 && <p class="muted">{t('doctor.nothing')}</p>}
      {rows.length > 0 && (
        <table class="grid">
          <thead><tr><th scope="col">{t('doctor.status')}</th><th scope="col">{t('doctor.check')}</th><th scope="col">{t('doctor.target')}</th><th scope="col">{t('doctor.wrong')}</th><th scope="col">{t('doctor.fix')}</th></tr></thead>
          <tbody>
            {rows.map((c, i) => (
              <tr key={`${c.id}/${c.target}/${i}`} data-check={c.id} data-status={c.status}>
                <td class={c.status === 'fail' ? 'bad' : c.status === 'warn' ? 'warn' : 'muted'}>{t(STATUS[c.status])}</td>
                <td><code>{c.id}</code></td>
                <td>{c.target}</td>
                <td>{c.message}</td>
                <td>{c.fix ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
