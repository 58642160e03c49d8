// A small on-screen keyboard for touch screens (US layout): the keys a phone's own keyboard
// lacks (Esc, Tab, Ctrl, Alt, arrows, F-keys) and the usual ones. Ctrl, Alt and Shift latch
// until the next key (or a second tap). Keys go to the desktop as keysyms through onKey; a
// character that needs Shift on a US layout gets it there (DesktopViewer.pressKey). The buttons
// never take the focus away from the desktop and need no layout files (guacamole-common-js's
// OnScreenKeyboard needs its JSON layouts and images).
import { useState } from 'preact/hooks';
import { KEYSYM } from './viewer.ts';
import { t } from '../i18n/index.ts';

interface Key { label: string; keysym: number; mod?: boolean; wide?: number; shifted?: string }

const ch = (c: string, shifted?: string): Key => ({ label: c, keysym: c.charCodeAt(0), ...(shifted ? { shifted } : {}) });
const row = (chars: string, shifted: string) => Array.from(chars).map((c, i) => ch(c, shifted[i]));
const F = (n: number): Key => ({ label: `F${n}`, keysym: 0xffbe + n - 1 });
const SHIFT_LETTER = (c: string) => c.toUpperCase();

const ROWS: Key[][] = [
  [{ label: 'Esc', keysym: KEYSYM.esc }, ...Array.from({ length: 12 }, (_, i) => F(i + 1))],
  [...row('`1234567890-=', '~!@#$%^&*()_+'), { label: '⌫', keysym: 0xff08, wide: 2 }],
  [{ label: 'Tab', keysym: KEYSYM.tab, wide: 1.5 }, ...Array.from('qwertyuiop').map((c) => ch(c, SHIFT_LETTER(c))), ...row('[]\\', '{}|')],
  [{ label: 'Ctrl', keysym: KEYSYM.ctrl, mod: true, wide: 1.5 }, ...Array.from('asdfghjkl').map((c) => ch(c, SHIFT_LETTER(c))), ...row(";'", ':"'), { label: 'Enter', keysym: KEYSYM.enter, wide: 2 }],
  [{ label: 'Shift', keysym: KEYSYM.shift, mod: true, wide: 2 }, ...Array.from('zxcvbnm').map((c) => ch(c, SHIFT_LETTER(c))), ...row(',./', '<>?'), { label: '↑', keysym: 0xff52 }],
  [{ label: 'Alt', keysym: KEYSYM.alt, mod: true, wide: 1.5 }, { label: 'Win', keysym: KEYSYM.super, wide: 1.5 }, { label: 'Space', keysym: 0x20, wide: 6 }, { label: 'Del', keysym: KEYSYM.del }, { label: '←', keysym: 0xff51 }, { label: '↓', keysym: 0xff54 }, { label: '→', keysym: 0xff53 }],
];

export function OnScreenKeyboard(props: { id?: string; onKey: (keysym: number, modifiers: number[]) => void; onClose: () => void }) {
  const [mods, setMods] = useState<number[]>([]);
  const shift = mods.includes(KEYSYM.shift);
  const press = (k: Key) => {
    if (k.mod) return setMods((m) => (m.includes(k.keysym) ? m.filter((x) => x !== k.keysym) : [...m, k.keysym]));
    // A latched Shift turns a character key into its shifted character (Shift is added for it).
    if (shift && k.shifted) props.onKey(k.shifted.charCodeAt(0), mods.filter((m) => m !== KEYSYM.shift));
    else props.onKey(k.keysym, mods);
    setMods([]);
  };
  return (
    <div class="osk" id={props.id} role="group" aria-label={t('keyboard.onScreenKeyboard')} data-testid="osk" data-local-keys>
      {ROWS.map((r, i) => (
        <div class="osk-row" key={i}>
          {r.map((k) => (
            <button
              key={k.label}
              type="button"
              class={k.mod && mods.includes(k.keysym) ? 'osk-key latched' : 'osk-key'}
              style={k.wide ? { flexGrow: k.wide } : undefined}
              aria-pressed={k.mod ? mods.includes(k.keysym) : undefined}
              data-keysym={k.keysym}
              // Keep the focus on the desktop: the key acts on pointer down, never focuses.
              onMouseDown={(e) => e.preventDefault()}
              onClick={() => press(k)}
            >
              {shift && k.shifted ? k.shifted : k.label}
            </button>
          ))}
        </div>
      ))}
      <button type="button" class="osk-close" onClick={props.onClose} title={t('keyboard.hideTheOnScreenKeyboard')}>{t('keyboard.hideKeyboard')}</button>
    </div>
  );
}
