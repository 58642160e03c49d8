// One desktop on screen: guacamole-common-js over the broker's tunnel. Scales to its element,
// sends its size to the desktop, wires keyboard/mouse/touch/clipboard (unless read-only), and
// reconnects by itself with backoff, asking for a fresh ticket each time.
import Guacamole from 'guacamole-common-js';
import { describeStatus, type StatusInfo } from './status.ts';
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
  maxAttempts?: number;
}

export class FatalTicketError extends Error {}

const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];

export const KEYSYM = { ctrl: 0xffe3, alt: 0xffe9, del: 0xffff, tab: 0xff09, esc: 0xff1b, super: 0xffeb, f11: 0xffc8 } as const;

export class DesktopViewer {
  private client: Guacamole.Client | null = null;
  private keyboard: Guacamole.Keyboard | null = null;
  private state: ViewerState = { phase: 'connecting', status: null, attempt: 0, nextAttemptAt: 0 };
  private timer: ReturnType<typeof setTimeout> | undefined;
  private resizeObserver: ResizeObserver;
  private sizeTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private generation = 0;

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
    const display = client.getDisplay();
    const el = display.getElement();
    el.classList.add('guac-display');
    this.host.replaceChildren(el);
    display.onresize = () => this.fit(false);
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
    client.connect(`width=${w}&height=${h}&dpi=${dpi}&timezone=${encodeURIComponent(Intl.DateTimeFormat().resolvedOptions().timeZone)}`);
  }

  private retry(status: StatusInfo): void {
    const attempt = this.state.attempt + 1;
    if (attempt > (this.o.maxAttempts ?? 8)) return this.finish({ ...status, message: `${status.message} Gave up after ${attempt - 1} attempts.`, retry: false });
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
    mouse.onEach(['mousedown', 'mousemove', 'mouseup'], (e) => client.sendMouseState(e.state, true));
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

  /** Scales the remote display into the host element; optionally asks the desktop to match. */
  private fit(sendSize: boolean): void {
    const c = this.client;
    if (!c) return;
    const d = c.getDisplay();
    const { w, h } = this.size();
    if (d.getWidth() > 0 && d.getHeight() > 0) d.scale(Math.min(w / d.getWidth(), h / d.getHeight()));
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

  sendClipboard(text: string): void {
    const c = this.client;
    if (!c || this.o.readOnly) return;
    const w = new Guacamole.StringWriter(c.createClipboardStream('text/plain'));
    w.sendText(text);
    w.sendEnd();
  }

  /** Closes the tunnel for good (Disconnect, Log off, leaving the page). */
  stop(): void {
    this.stopped = true;
    this.generation++;
    clearTimeout(this.timer);
    clearTimeout(this.sizeTimer);
    this.resizeObserver.disconnect();
    this.detachInput();
    this.client?.disconnect();
    this.client = null;
  }
}
