// One VNC connection shared by its users (the owner and any joiners): the RFB client, the
// framebuffer's dirty region, and guacd-style flow control. A frame goes out only when
// every user has answered the previous frame's `sync`; changes arriving meanwhile merge
// into the dirty region, and at most one FramebufferUpdateRequest is outstanding, so a
// slow client gets fewer, larger frames and nothing queues up in memory.
// Encoding is content-aware (frame.encoder.ts): the session keeps each tile's change
// frequency, the lossy quality adapted to frame round trips (quality.ts), the image types
// every user accepts, and sends areas held lossy by the client again losslessly once they
// stop changing.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ChangeHeat } from './classify.ts';
import { DirtyRegion, type Rect } from './framebuffer.ts';
import { cursorInstructions, prepareFrame, StreamIds, type CopyOp, type EncodePolicy } from './frame.encoder.ts';
import { QualityControl, type QualityBounds } from './quality.ts';
import { encode, encodeBlobs, GuacError, InstructionWriter, Status } from './protocol.ts';
import { RfbClient, type RfbSink } from './rfb.client.ts';
import { clipboardToText, textToClipboard, type VncSettings } from './settings.ts';

/** guacd's GUAC_VNC_CONNECT_INTERVAL between autoretry attempts. */
const RETRY_INTERVAL_MS = 1000;
/** A framebuffer unchanged this long is deflated in memory until the next change. */
const HIBERNATE_AFTER_MS = 2000;
/** Input is paused while this much waits to be written to the VNC server. */
const INPUT_HIGH_WATER = 256 * 1024;
/** Areas the client holds lossy are sent again losslessly after this long without change. */
export const DEFAULT_LOSSLESS_REFRESH_MS = 600;

/** Encoding settings of a gateway (config `gateway.*`). */
export type EncodingOptions = { quality: QualityBounds; losslessRefreshMs: number };

/** What the session needs from a connected Guacamole user (see connection.ts). */
export interface SessionUser {
  readonly id: string;
  readonly readOnly: boolean;
  /** Image mimetypes the client offered in the handshake's `image` instruction. */
  readonly imageTypes?: ReadonlySet<string>;
  /** Writes instructions to the user's socket. */
  send(data: string | Buffer): void;
  /** True while the user owes a `sync` or its socket has a large backlog. */
  blocksFrames(): boolean;
  /** Sends a frame ending with `sync ts` and remembers that it owes that sync. */
  sendFrame(data: Buffer, ts: number): void;
  /** Sends `error` + `disconnect` and closes. */
  abort(message: string, status: number): void;
  pauseInput(): void;
  resumeInput(): void;
}

export class VncSession implements RfbSink {
  readonly id = `$${randomUUID()}`;
  readonly log: Logger;
  private readonly users = new Set<SessionUser>();
  private rfb: RfbClient | undefined;
  private readonly dirty = new DirtyRegion();
  private copies: CopyOp[] = [];
  private pending = ''; // size changes etc., sent at the start of the next frame
  private pendingCursor: { x: number; y: number; w: number; h: number; rgba: Buffer } | undefined;
  private cursorInstr = ''; // last cursor, replayed to joiners
  private readonly ids = new StreamIds();
  private flushing = false;
  private flushQueued = false;
  private updateOutstanding = false;
  /** When the outstanding FramebufferUpdateRequest was sent. */
  private requestedAt = 0;
  private lastTs = 0;
  private ended = false;
  private inputPaused = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private heat: ChangeHeat | undefined;
  private readonly quality: QualityControl;
  private readonly refreshMs: number;
  private refreshTimer: NodeJS.Timeout | undefined;
  /** Rectangles the current FramebufferUpdate changed (counted once per update). */
  private updateDamage: Rect[] = [];
  /** The first update answers our full (non-incremental) request: no change to count. */
  private initialUpdate = true;

  constructor(
    readonly settings: VncSettings,
    logger: Logger,
    /** Names the connection in logs: the id itself is a join target, kept out of info logs. */
    logNumber: number,
    private readonly onEnd: (s: VncSession) => void,
    encoding?: Partial<EncodingOptions>,
  ) {
    this.log = logger.child({ connection: logNumber });
    this.quality = new QualityControl(encoding?.quality);
    this.refreshMs = encoding?.losslessRefreshMs ?? DEFAULT_LOSSLESS_REFRESH_MS;
    this.log.debug({ id: this.id }, 'connection id');
  }

  get userCount(): number {
    return this.users.size;
  }

  /** Connects to the VNC server (with autoretry) and streams until it ends. */
  async start(): Promise<void> {
    const s = this.settings;
    let attempt = 0;
    for (;;) {
      try {
        this.rfb = await RfbClient.connect({ host: s.hostname, port: s.port, password: s.password, encodings: s.encodings });
        break;
      } catch (e) {
        const err = e instanceof GuacError ? e : new GuacError('Unable to connect to VNC server.', Status.UPSTREAM_ERROR);
        const retryable = err.status !== Status.CLIENT_UNAUTHORIZED && err.status !== Status.CLIENT_FORBIDDEN;
        if (this.ended) return;
        if (!retryable || attempt >= s.autoretry) return this.end(err);
        attempt++;
        this.log.info({ attempt, err: err.message }, 'VNC connect failed; retrying');
        await new Promise((r) => setTimeout(r, RETRY_INTERVAL_MS));
        if (this.ended) return;
      }
    }
    const rfb = this.rfb;
    if (this.ended) return rfb.close();
    this.log.info({ width: rfb.fb.width, height: rfb.fb.height }, 'VNC connected');
    for (const u of this.users) this.greet(u);
    this.heat = new ChangeHeat(rfb.fb.width, rfb.fb.height);
    this.dirty.add({ x: 0, y: 0, w: rfb.fb.width, h: rfb.fb.height });
    this.updateOutstanding = true;
    rfb.requestUpdate(false);
    try {
      await rfb.run(this);
      this.end();
    } catch (e) {
      this.end(e instanceof GuacError ? e : new GuacError('Internal error handling VNC data', Status.SERVER_ERROR));
      if (!(e instanceof GuacError)) this.log.error({ err: e }, 'VNC session failed');
    }
  }

  private greet(u: SessionUser): void {
    const fb = this.rfb!.fb;
    u.send(encode('name', this.rfb!.name) + encode('size', 0, fb.width, fb.height) + this.cursorInstr);
  }

  addUser(u: SessionUser): void {
    this.users.add(u);
    if (this.rfb && !this.ended) {
      this.greet(u);
      const fb = this.rfb.fb;
      this.dirty.add({ x: 0, y: 0, w: fb.width, h: fb.height });
      this.scheduleFlush();
    }
  }

  removeUser(u: SessionUser): void {
    this.users.delete(u);
    if (this.users.size === 0) this.end();
    else this.scheduleFlush();
  }

  /** Ends the session: errors go to every user, then the VNC connection closes. */
  end(err?: GuacError): void {
    if (this.ended) return;
    this.ended = true;
    if (err) this.log.info({ status: err.status, err: err.message }, 'VNC session ended with error');
    else this.log.info('VNC session ended');
    const users = [...this.users];
    this.users.clear();
    clearTimeout(this.idleTimer);
    clearTimeout(this.refreshTimer);
    for (const u of users) u.abort(err?.message ?? 'Connection closed.', err?.status ?? Status.SUCCESS);
    this.rfb?.close();
    this.onEnd(this);
  }

  // ---- RfbSink: changes from the VNC server ----

  resized(width: number, height: number): void {
    this.pending += encode('size', 0, width, height);
    this.copies = [];
    this.dirty.take();
    this.dirty.add({ x: 0, y: 0, w: width, h: height });
    this.heat?.resize(width, height);
    this.updateDamage = [];
  }

  damaged(r: Rect): void {
    this.dirty.add(r);
    this.updateDamage.push(r);
  }

  copied(sx: number, sy: number, r: Rect): void {
    // Safe as a client-side copy only if the source holds pixels the client already has.
    const src = { x: sx, y: sy, w: r.w, h: r.h };
    if (this.dirty.intersects(src) || this.copies.length >= 64) {
      this.dirty.add(r);
      this.updateDamage.push(r);
      return;
    }
    this.copies.push({ sx, sy, rect: r });
    // A copy of lossy pixels is lossy too: refresh the destination once it settles.
    if (this.heat?.lossyIn(src)) this.heat.sent(r, true, Date.now());
  }

  cursor(x: number, y: number, w: number, h: number, rgba: Buffer): void {
    this.pendingCursor = { x, y, w, h, rgba };
  }

  clipboard(latin1: Buffer): void {
    if (this.settings.disableCopy) return;
    const text = clipboardToText(latin1, this.settings.clipboardEncoding);
    const id = this.ids.take();
    const out = encode('clipboard', id, 'text/plain') + encodeBlobs(id, Buffer.from(text, 'utf8')) + encode('end', id);
    for (const u of this.users) u.send(out);
  }

  updateDone(): void {
    if (!this.initialUpdate) this.heat?.changed(this.updateDamage, Date.now());
    this.initialUpdate = false;
    this.updateDamage = [];
    this.touch();
    this.updateOutstanding = false;
    this.scheduleFlush();
    this.maybeRequest();
  }

  /** (Re)arms the timer that hibernates the framebuffer of an idle desktop. */
  private touch(): void {
    if (this.idleTimer) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(() => {
      if (this.ended || !this.rfb) return;
      if (this.flushing) return this.touch();
      void this.rfb.fb.hibernate().catch((e: unknown) => this.log.warn({ err: e }, 'framebuffer hibernation failed'));
    }, HIBERNATE_AFTER_MS);
    this.idleTimer.unref();
  }

  // ---- flow control ----

  private anyBlocked(): boolean {
    for (const u of this.users) if (u.blocksFrames()) return true;
    return false;
  }

  /** Asks the VNC server for the next update unless a frame is both pending and unsent. */
  private maybeRequest(): void {
    if (this.ended || !this.rfb || this.updateOutstanding) return;
    const pendingFrame = !this.dirty.empty || this.copies.length > 0 || this.flushing;
    if (pendingFrame && this.anyBlocked()) return;
    this.updateOutstanding = true;
    this.requestedAt = Date.now();
    this.rfb.requestUpdate(true);
  }

  /** Called when a user answered a sync or its socket drained. */
  userReady(): void {
    if (!this.anyBlocked()) this.quality.frameAcked(Date.now());
    this.scheduleFlush();
    this.maybeRequest();
  }

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      this.flush().catch((e: unknown) => {
        this.log.error({ err: e }, 'frame encoding failed');
        this.end(new GuacError('Internal error encoding a frame', Status.SERVER_ERROR));
      });
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.ended || !this.rfb || this.users.size === 0) return;
    if (this.dirty.empty && this.copies.length === 0 && !this.pending && !this.pendingCursor) return;
    if (this.anyBlocked()) return;
    this.flushing = true;
    try {
      let cursor = '';
      if (this.pendingCursor) {
        const c = this.pendingCursor;
        this.pendingCursor = undefined;
        cursor = this.cursorInstr = await cursorInstructions(this.ids, c.x, c.y, c.w, c.h, c.rgba);
        if (this.ended) return;
      }
      // Everything below is taken in one synchronous step, so sizes, copies and pixels agree.
      const out = new InstructionWriter().text(this.pending + cursor);
      this.pending = '';
      const copies = this.copies;
      this.copies = [];
      await prepareFrame(this.rfb.fb, copies, this.dirty.take(), this.settings.swapRedBlue, this.ids, this.policy(), out);
      if (this.ended) return;
      const ts = Math.max(Date.now(), this.lastTs + 1);
      this.lastTs = ts;
      const frame = out.instruction('sync', ts).take();
      for (const u of this.users) u.sendFrame(frame, ts);
      this.quality.frameSent(frame.length, Date.now());
      this.scheduleRefresh();
    } finally {
      this.flushing = false;
    }
    this.maybeRequest();
    if (!this.dirty.empty || this.copies.length > 0 || this.pending || this.pendingCursor) this.scheduleFlush();
  }

  /** What every user accepts (PNG always, like guacd) and the adaptive state. */
  private policy(): EncodePolicy {
    let webp = true;
    let jpeg = true;
    for (const u of this.users) {
      const t = u.imageTypes ?? new Set<string>();
      webp &&= t.has('image/webp');
      jpeg &&= t.has('image/jpeg');
    }
    return { webp, jpeg, quality: this.quality.quality, lossyWebp: this.quality.slowLink, heat: this.heat, now: Date.now() };
  }

  /** While the client holds lossy areas, checks for settled ones to send again losslessly. */
  private scheduleRefresh(): void {
    if (this.refreshTimer || !this.heat?.anyLossy || this.ended) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      if (this.ended || !this.heat) return;
      const now = Date.now();
      // The server is idle when our request has waited a while without an answer.
      const serverIdle = this.updateOutstanding && now - this.requestedAt >= 2 * this.refreshMs;
      const settled = this.heat.settled(now, this.refreshMs, serverIdle);
      for (const r of settled) this.dirty.add(r);
      if (settled.length > 0) {
        this.scheduleFlush();
        this.maybeRequest();
      }
      this.scheduleRefresh();
    }, this.refreshMs / 2);
    this.refreshTimer.unref();
  }

  // ---- input from users ----

  private writable(u: SessionUser): RfbClient | undefined {
    if (u.readOnly || this.ended || !this.rfb) return undefined;
    if (this.rfb.pendingWrite > INPUT_HIGH_WATER && !this.inputPaused) {
      // The VNC server is not reading: stop reading input until it drains.
      this.inputPaused = true;
      for (const x of this.users) x.pauseInput();
      this.rfb.onDrain(() => {
        this.inputPaused = false;
        for (const x of this.users) x.resumeInput();
      });
    }
    return this.rfb;
  }

  key(u: SessionUser, keysym: number, down: boolean): void {
    this.writable(u)?.key(keysym, down);
  }

  mouse(u: SessionUser, x: number, y: number, mask: number): void {
    const rfb = this.writable(u);
    if (!rfb) return;
    rfb.pointer(x, y, mask);
    // Like guacd, the other users (e.g. a helpdesk shadowing) see where the pointer is.
    if (this.users.size > 1) {
      const ins = encode('mouse', x, y, mask, Date.now());
      for (const other of this.users) if (other !== u) other.send(ins);
    }
  }

  clipboardFromUser(u: SessionUser, text: string): boolean {
    if (this.settings.disablePaste) return false;
    const rfb = this.writable(u);
    if (!rfb) return false;
    rfb.cutText(textToClipboard(text, this.settings.clipboardEncoding));
    return true;
  }

  resize(u: SessionUser, width: number, height: number): void {
    const rfb = this.writable(u);
    if (!rfb || width < 1 || height < 1) return;
    if (width === rfb.fb.width && height === rfb.fb.height) return;
    if (rfb.setDesktopSize(width, height)) this.log.debug({ width, height }, 'requested desktop resize');
  }
}
