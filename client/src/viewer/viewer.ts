// One desktop on screen: guacamole-common-js over the broker's tunnel. Scales to its element,
// sends its size to the desktop, wires keyboard/mouse/touch/clipboard (unless read-only), and
// reconnects by itself with backoff, asking for a fresh ticket each time.
import Guacamole from 'guacamole-common-js';
import { describeStatus, type StatusInfo } from './status.ts';
import { t } from '../i18n/index.ts';
import { ticketTunnel } from './ticket-tunnel.ts';

export type ViewerPhase = 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface ViewerState {
  phase: ViewerPhase;
  /** Why the last connection ended (if it did). */
  status: StatusInfo | null;
  attempt: number;
  /** When the next reconnect attempt starts (ms epoch), while reconnecting. */
  nextAttemptAt: number;
}

export interface ViewerOptions {
  /** Asks the broker for a fresh single-use ticket; throws a FatalTicketError if retrying is useless. */
  ticket: () => Promise<{ ticket: string; tunnel: string }>;
  readOnly: boolean;
  onState: (s: ViewerState) => void;
  /** Text the desktop put on its clipboard. */
  onClipboard?: (text: string) => void;
  /** A connection drew its first frame, `ms` after it was opened (once per connection). */
  onFirstFrame?: (ms: number) => void;
  /** The desktop sent its own pointer image: it is drawn in the display and the local pointer hidden. */
  onRemoteCursor?: () => void;
  maxAttempts?: number;
}

export class FatalTicketError extends Error {}

// guacamole-common-js 1.5 parts not in guacamole.d.ts (shared): the software cursor, sound, acks.
type CursorDisplay = Guacamole.Display & { oncursor: ((canvas: HTMLCanvasElement, x: number, y: number) => void) | null; moveCursor(x: number, y: number): void };
type AudioClient = Guacamole.Client & { onaudio: ((stream: Guacamole.InputStream, mimetype: string) => unknown) | null };
type AckWriter = Guacamole.StringWriter & { onack: ((status: Guacamole.Status) => void) | null };
const AudioPlayer = (Guacamole as unknown as { AudioPlayer?: { getSupportedTypes(): string[]; getInstance(stream: Guacamole.InputStream, mimetype: string): unknown } }).AudioPlayer;
const pointOf = (state: Guacamole.Mouse.State) => state as unknown as { x: number; y: number };

const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];

export const KEYSYM = { ctrl: 0xffe3, alt: 0xffe9, del: 0xffff, tab: 0xff09, esc: 0xff1b, super: 0xffeb, f11: 0xffc8, shift: 0xffe1, enter: 0xff0d } as const;

/** Characters typed with Shift on a US keyboard (besides A-Z). */
const SHIFTED = new Set('~!@#$%^&*()_+{}|:"<>?');

/**
 * The keystrokes that type one character: its keysym, and whether Shift must be held. Consoles
 * that turn keysyms into scancodes (QEMU's VNC server) type `4` for `$` unless Shift is down, so
 * Shift_L is pressed around every character that needs it on a US layout.
 */
export function keystrokeOf(ch: string): { keysym: number; shift: boolean } | null {
  const cp = ch.codePointAt(0)!;
  if (ch === '\n' || ch === '\r') return { keysym: KEYSYM.enter, shift: false };
  if (ch === '\t') return { keysym: KEYSYM.tab, shift: false };
  if (cp < 0x20 || cp === 0x7f) return null;
  if (cp <= 0x7e) return { keysym: cp, shift: (cp >= 0x41 && cp <= 0x5a) || SHIFTED.has(ch) };
  // Latin-1 keysyms equal their code point; everything else is 0x01000000 + the code point (X11).
  return { keysym: cp <= 0xff ? cp : 0x01000000 + cp, shift: false };
}

/** The key events (pressed, keysym) that type `text`, Shift included; \r\n counts as one Enter. */
export function keyEventsOf(text: string): { events: [0 | 1, number][]; typed: number } {
  const events: [0 | 1, number][] = [];
  let typed = 0;
  for (const ch of text.replace(/\r\n/g, '\n')) {
    const k = keystrokeOf(ch);
    if (!k) continue;
    if (k.shift) events.push([1, KEYSYM.shift]);
    events.push([1, k.keysym], [0, k.keysym]);
    if (k.shift) events.push([0, KEYSYM.shift]);
    typed++;
  }
  return { events, typed };
}

/** Typed text goes out in slices of this many events, one slice per animation frame or so. */
const TYPE_SLICE = 64;
/** Longest text "Type as keystrokes" types (a paste of a whole document is a mistake). */
export const TYPE_MAX_CHARS = 5000;

export class DesktopViewer {
  private client: Guacamole.Client | null = null;
  private keyboard: Guacamole.Keyboard | null = null;
  private state: ViewerState = { phase: 'connecting', status: null, attempt: 0, nextAttemptAt: 0 };
  private timer: ReturnType<typeof setTimeout> | undefined;
  private resizeObserver: ResizeObserver;
  private sizeTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private generation = 0;
  private remoteCursor = false;
  /** The mouse's last position over the display (element pixels), for placing the desktop's pointer when it arrives. */
  private pointer: { x: number; y: number } | null = null;
  private typing: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly host: HTMLElement, private readonly o: ViewerOptions) {
    this.resizeObserver = new ResizeObserver(() => this.fit(true));
    this.resizeObserver.observe(host);
  }

  start(): void {
    void this.open();
  }

  private set(p: Partial<ViewerState>): void {
    this.state = { ...this.state, ...p };
    this.o.onState(this.state);
  }

  private async open(): Promise<void> {
    const gen = ++this.generation;
    this.set({ phase: this.state.attempt > 0 ? 'reconnecting' : 'connecting', nextAttemptAt: 0 });
    let t: { ticket: string; tunnel: string };
    try {
      t = await this.o.ticket();
    } catch (e) {
      if (gen !== this.generation || this.stopped) return;
      if (e instanceof FatalTicketError) return this.finish({ name: 'ENDED', message: e.message, retry: false });
      return this.retry({ name: 'TICKET', message: e instanceof Error ? e.message : String(e), retry: true });
    }
    if (gen !== this.generation || this.stopped) return;
    const url = new URL(t.tunnel, location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    // The ticket goes as the first message, never in the URL (ticket-tunnel.ts).
    const tunnel = ticketTunnel(url.toString(), t.ticket);
    const client = new Guacamole.Client(tunnel);
    this.client = client;
    const display = client.getDisplay() as CursorDisplay;
    const el = display.getElement();
    el.classList.add('guac-display');
    this.host.replaceChildren(el);
    display.onresize = () => this.fit(false);
    // The desktop's pointer: guacamole-common-js draws it in the display's cursor layer where the
    // mouse is; the local pointer is hidden over the display so there is one pointer, not two.
    this.remoteCursor = false;
    display.showCursor(false);
    display.oncursor = () => {
      if (gen !== this.generation) return;
      if (!this.remoteCursor) {
        this.remoteCursor = true;
        el.classList.add('remote-cursor');
        display.showCursor(true);
        // Drawn where the mouse is now, not where it was when the display began: the mouse may
        // not move again for a while.
        this.placeCursor(display);
        this.o.onRemoteCursor?.();
      }
    };
    // Sound, where the console offers it (guacd with RDP; a VNC console has none).
    (client as AudioClient).onaudio = (stream, mimetype) => AudioPlayer?.getInstance(stream, mimetype) ?? null;
    // A `sync` ends a frame, but onsync runs when its drawing is queued: the display's flush
    // callback runs once it is on the canvas. The first drawn frame with a size is the first frame.
    const openedAt = performance.now();
    let drawn = false;
    client.onsync = () => {
      if (drawn) return;
      display.flush(() => {
        if (drawn || gen !== this.generation || display.getWidth() <= 0) return;
        drawn = true;
        this.o.onFirstFrame?.(Math.round(performance.now() - openedAt));
      });
    };
    let ended = false;
    const end = (status: StatusInfo) => {
      if (ended || gen !== this.generation) return;
      ended = true;
      this.detachInput();
      if (this.stopped) return;
      if (status.retry) this.retry(status);
      else this.finish(status);
    };
    client.onerror = (s) => end(describeStatus(s.code, s.message));
    tunnel.onerror = (s) => end(describeStatus(s.code, s.message));
    client.onstatechange = (s) => {
      if (s === 3) {
        this.set({ phase: 'connected', attempt: 0, status: null });
        this.fit(true);
      } else if (s === 5) {
        end(describeStatus(undefined));
      }
    };
    client.onclipboard = (stream, mimetype) => {
      if (!/^text\//.test(mimetype)) return;
      const reader = new Guacamole.StringReader(stream);
      let text = '';
      reader.ontext = (s) => void (text += s);
      reader.onend = () => this.o.onClipboard?.(text);
    };
    if (!this.o.readOnly) this.attachInput(client, el);
    const { w, h } = this.size();
    const dpi = Math.round(96 * Math.min(2, window.devicePixelRatio || 1));
    const audio = (AudioPlayer?.getSupportedTypes() ?? []).map((t) => `&audio=${encodeURIComponent(t)}`).join('');
    const images = imageTypes().map((t) => `&image=${encodeURIComponent(t)}`).join('');
    client.connect(`width=${w}&height=${h}&dpi=${dpi}&timezone=${encodeURIComponent(Intl.DateTimeFormat().resolvedOptions().timeZone)}${audio}${images}`);
  }

  private retry(status: StatusInfo): void {
    const attempt = this.state.attempt + 1;
    if (attempt > (this.o.maxAttempts ?? 8)) return this.finish({ ...status, message: `${status.message} ${t('viewer.gaveUp', { count: attempt - 1 })}`, retry: false });
    const delay = BACKOFF_MS[Math.min(attempt - 1, BACKOFF_MS.length - 1)]!;
    this.set({ phase: 'reconnecting', status, attempt, nextAttemptAt: Date.now() + delay });
    this.timer = setTimeout(() => void this.open(), delay);
  }

  /** Reconnect now (the "Reconnect" button), keeping the attempt count. */
  reconnectNow(): void {
    clearTimeout(this.timer);
    this.stopped = false;
    this.client?.disconnect();
    void this.open();
  }

  private finish(status: StatusInfo): void {
    this.set({ phase: 'closed', status, nextAttemptAt: 0 });
  }

  private attachInput(client: Guacamole.Client, el: HTMLElement): void {
    const mouse = new Guacamole.Mouse(el);
    mouse.onEach(['mousedown', 'mousemove', 'mouseup'], (e) => {
      client.sendMouseState(e.state, true);
      const p = pointOf(e.state);
      this.pointer = { x: p.x, y: p.y };
      // The remote pointer follows the mouse at once (the desktop's answer would lag).
      if (this.remoteCursor) this.placeCursor(client.getDisplay());
    });
    const touch = new Guacamole.Mouse.Touchscreen(el);
    touch.onEach(['mousedown', 'mousemove', 'mouseup'], (e) => client.sendMouseState(e.state, true));
    const kb = new Guacamole.Keyboard(document);
    // Returning false stops the browser's default action: Tab, Backspace, F-keys, Ctrl-W... go
    // to the desktop. Keys typed into the viewer's own fields (clipboard box) stay local.
    kb.onkeydown = (keysym) => {
      if (this.localFocus()) return true;
      client.sendKeyEvent(1, keysym);
      return false;
    };
    kb.onkeyup = (keysym) => {
      if (!this.localFocus()) client.sendKeyEvent(0, keysym);
    };
    this.keyboard = kb;
  }

  private localFocus(): boolean {
    const a = document.activeElement;
    // Dialogs over the desktop (a helpdesk message) mark themselves: their buttons take Enter and Space.
    return !!a && (a.tagName === 'TEXTAREA' || a.tagName === 'INPUT' || a.tagName === 'SELECT' || !!a.closest('[data-local-keys]'));
  }

  private detachInput(): void {
    if (this.keyboard) {
      this.keyboard.onkeydown = null;
      this.keyboard.onkeyup = null;
      this.keyboard.reset();
      this.keyboard = null;
    }
  }

  private size(): { w: number; h: number } {
    const r = this.host.getBoundingClientRect();
    return { w: Math.max(320, Math.floor(r.width)), h: Math.max(200, Math.floor(r.height)) };
  }

  /** Draws the desktop's pointer where the mouse is: in desktop pixels, at the display's scale now. */
  private placeCursor(d: Guacamole.Display): void {
    if (!this.pointer) return;
    const scale = d.getScale() || 1;
    (d as CursorDisplay).moveCursor(Math.floor(this.pointer.x / scale), Math.floor(this.pointer.y / scale));
  }

  /** Scales the remote display into the host element; optionally asks the desktop to match. */
  private fit(sendSize: boolean): void {
    const c = this.client;
    if (!c) return;
    const d = c.getDisplay();
    const { w, h } = this.size();
    if (d.getWidth() > 0 && d.getHeight() > 0) {
      d.scale(Math.min(w / d.getWidth(), h / d.getHeight()));
      // The desktop's pointer stays under the mouse: it is placed in desktop pixels, which a new
      // scale (the window or the desktop resized) moves on the screen until the mouse moves again.
      if (this.remoteCursor) this.placeCursor(d);
    }
    if (sendSize && !this.o.readOnly && this.state.phase === 'connected') {
      clearTimeout(this.sizeTimer);
      this.sizeTimer = setTimeout(() => c.sendSize(w, h), 250);
    }
  }

  sendKeys(keysyms: number[]): void {
    const c = this.client;
    if (!c || this.o.readOnly) return;
    for (const k of keysyms) c.sendKeyEvent(1, k);
    for (const k of [...keysyms].reverse()) c.sendKeyEvent(0, k);
  }

  /** Presses and releases one key (on-screen keyboard); a character key gets Shift when it needs it. */
  pressKey(keysym: number, modifiers: number[] = []): void {
    const c = this.client;
    if (!c || this.o.readOnly) return;
    const ch = keysym >= 0x20 && keysym <= 0x7e ? String.fromCharCode(keysym) : '';
    const shift = ch ? keystrokeOf(ch)!.shift && !modifiers.includes(KEYSYM.shift) : false;
    const held = shift ? [...modifiers, KEYSYM.shift] : modifiers;
    for (const m of held) c.sendKeyEvent(1, m);
    c.sendKeyEvent(1, keysym);
    c.sendKeyEvent(0, keysym);
    for (const m of [...held].reverse()) c.sendKeyEvent(0, m);
  }

  /**
   * Types text as keystrokes (for consoles without a shared clipboard: a text console, a login
   * screen). Resolves with the number of characters typed; a new call cancels one in progress.
   */
  typeText(text: string): Promise<number> {
    const c = this.client;
    if (!c || this.o.readOnly || this.state.phase !== 'connected') return Promise.resolve(0);
    clearTimeout(this.typing);
    const { events, typed } = keyEventsOf(text.slice(0, TYPE_MAX_CHARS));
    return new Promise((resolve) => {
      let i = 0;
      const step = () => {
        if (this.client !== c) return resolve(0);
        // In order, a slice at a time (a held Shift simply stays down across slices).
        const end = Math.min(events.length, i + TYPE_SLICE);
        for (; i < end; i++) c.sendKeyEvent(events[i]![0], events[i]![1]);
        if (i < events.length) this.typing = setTimeout(step, 15);
        else resolve(typed);
      };
      step();
    });
  }

  /** Puts text on the desktop's clipboard; resolves when the gateway accepted it (or could not say). */
  sendClipboard(text: string): Promise<void> {
    const c = this.client;
    if (!c || this.o.readOnly || this.state.phase !== 'connected') return Promise.reject(new Error(t('viewer.notConnected')));
    const stream = c.createClipboardStream('text/plain');
    const w = new Guacamole.StringWriter(stream) as AckWriter;
    return new Promise((resolve, reject) => {
      let settled = false;
      const done = (err?: Error) => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve();
      };
      w.onack = (status) => {
        if (status?.isError?.()) done(new Error(t('viewer.clipRefused', { reason: status.message || `status 0x${status.code.toString(16)}` })));
      };
      w.sendText(text);
      w.sendEnd();
      // Gateways acknowledge blobs only sometimes: sent is good enough after a moment.
      setTimeout(() => done(), 300);
    });
  }

  /** The session is over (the broker said so): closes the tunnel and stops reconnecting. */
  end(message: string): void {
    if (this.stopped) return;
    this.stop();
    this.finish({ name: 'ENDED', message, retry: false });
  }

  /** Closes the tunnel for good (Disconnect, Log off, leaving the page). */
  stop(): void {
    this.stopped = true;
    this.generation++;
    clearTimeout(this.timer);
    clearTimeout(this.sizeTimer);
    clearTimeout(this.typing);
    this.resizeObserver.disconnect();
    this.detachInput();
    this.client?.disconnect();
    this.client = null;
  }
}

let imageTypesOffered: string[] | undefined;
/** The image formats this browser decodes, offered to the gateway/guacd (WebP is smaller for photos). */
function imageTypes(): string[] {
  if (!imageTypesOffered) {
    // A browser that can encode WebP in a canvas decodes it too (Chromium, Firefox).
    const webp = document.createElement('canvas').toDataURL('image/webp').startsWith('data:image/webp');
    imageTypesOffered = ['image/png', 'image/jpeg', ...(webp ? ['image/webp'] : [])];
  }
  return imageTypesOffered;
}
