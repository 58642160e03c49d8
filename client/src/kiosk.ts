// Kiosk (thin client) mode: `/?kiosk=1` turns it on for this device (kept in localStorage),
// `/?kiosk=0` turns it off.
const KEY = 'vdi.kiosk';

export function kioskMode(): boolean {
  const q = new URLSearchParams(location.search).get('kiosk');
  try {
    if (q === '1') localStorage.setItem(KEY, '1');
    if (q === '0') localStorage.removeItem(KEY);
    return localStorage.getItem(KEY) === '1';
  } catch {
    return q === '1';
  }
}
