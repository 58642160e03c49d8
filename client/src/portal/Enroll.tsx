// /enroll: a kiosk browser becomes an enrolled device with a code from an admin, typed in or
// opened as /enroll?code=... (the code leaves the address bar and history at once).
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, setCsrf } from '../api.ts';
import { deviceStatus } from '../kiosk.ts';
import { t } from '../i18n/index.ts';

interface Enrolled { device: { id: string; name: string; location: string; mode: string } }

function explain(e: unknown): string {
  if (e instanceof ApiError && e.code === 'enrolment_code_invalid') return t('enrollM.thisCodeIsUnknownExpired');
  if (e instanceof ApiError && e.code === 'validation_failed') return t('enrollM.typeTheCodeAsThe');
  return e instanceof Error ? e.message : String(e);
}

export function Enroll() {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<Enrolled['device'] | null>(null);
  const s = deviceStatus();

  const enrol = async (code: string) => {
    setBusy(true);
    setError(null);
    try {
      // A browser logged in as someone needs its CSRF token for the call.
      await api.get<{ csrfToken: string }>('/me').then((me) => setCsrf(me.csrfToken), () => undefined);
      const r = await api.post<Enrolled>('/devices/enroll', { code });
      setDone(r.device);
      // A fresh start as the device: the kiosk takes the mode the broker gave it.
      setTimeout(() => location.replace('/'), 1500);
    } catch (e) {
      setError(explain(e));
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => {
    const code = new URLSearchParams(location.search).get('code');
    if (!code) return;
    // The code must not stay in the address bar or history (it may have uses left).
    history.replaceState(null, '', '/enroll');
    void enrol(code);
  }, []);

  return (
    <main class="login kiosk">
      <form
        class="card"
        data-testid="enroll"
        onSubmit={(e) => {
          e.preventDefault();
          void enrol(String(new FormData(e.currentTarget).get('code') ?? ''));
        }}
      >
        <h1>{t('enroll.enrolThisDevice')}</h1>
        {s.state === 'revoked' && <p class="banner bad" role="alert" data-testid="enroll-revoked">{t('enroll.thisDeviceWasRevokedBy')}</p>}
        {s.state === 'unknown' && <p class="banner bad" role="alert">{t('enroll.thisDeviceSEnrolmentIs')}</p>}
        {s.state === 'none' && s.requireEnrolledKiosk && <p class="banner" role="status">{t('enroll.kiosksMustBeEnrolledBefore')}</p>}
        {done ? (
          <p class="banner ok" role="status" data-testid="enrolled">{t('enroll.enrolled', { name: done.name, location: done.location })}</p>
        ) : (
          <>
            <label>{t('enroll.enrolmentCode')}{' '}<input name="code" autocomplete="off" autocapitalize="characters" spellcheck={false} maxLength={64} required autofocus placeholder={t('enroll.xxxxXxxxXxxxXxxx')} /></label>
            <button class="primary" disabled={busy}>{busy ? t('enroll.enrolling') : t('enroll.enrol')}</button>
          </>
        )}
        {error && <p class="banner bad" role="alert" data-testid="enroll-error">{error}</p>}
      </form>
    </main>
  );
}
