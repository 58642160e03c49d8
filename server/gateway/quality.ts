// Adapts a connection's lossy quality to how fast its users take frames. A frame's round trip
// is the time from writing it to the moment every user has answered its `sync` (what the
// flow control waits for): it grows with the client's latency, with the bytes of the frame
// over the link's throughput, and with the client's decoding time. Quality steps down while
// round trips are slow and back up while they are fast. Throughput (frame bytes over round
// trip, for frames large enough to say something) decides whether bytes or our CPU is the
// scarcer resource: WebP (smaller, ~2–3× the CPU of JPEG) is worth it only on slow links.

export type QualityBounds = { min: number; max: number };

export const DEFAULT_QUALITY_BOUNDS: QualityBounds = { min: 40, max: 85 };
/** Round trips at or below this let quality rise. */
export const FAST_RTT_MS = 50;
/** Round trips at or above this make quality drop. */
export const SLOW_RTT_MS = 150;
/** Below this throughput (bytes/s) the link, not our CPU, is the bottleneck (8 Mbit/s). */
export const SLOW_LINK_BPS = 1_000_000;
/** Frames smaller than this say little about throughput. */
const MIN_THROUGHPUT_BYTES = 128 * 1024;

export class QualityControl {
  quality: number;
  /** Smoothed round trip, ms (undefined until the first acknowledged frame). */
  rttMs: number | undefined;
  /** Smoothed throughput, bytes/s (undefined until a large enough frame was acknowledged). */
  bytesPerSecond: number | undefined;
  private sentAt: number | undefined;
  private sentBytes = 0;

  constructor(readonly bounds: QualityBounds = DEFAULT_QUALITY_BOUNDS) {
    this.quality = bounds.max;
  }

  /** A frame of `bytes` went to every user at `now`. */
  frameSent(bytes: number, now: number): void {
    this.sentAt = now;
    this.sentBytes = bytes;
  }

  /** Every user has answered the last frame's sync. */
  frameAcked(now: number): void {
    if (this.sentAt === undefined) return;
    const rtt = Math.max(0, now - this.sentAt);
    this.sentAt = undefined;
    this.rttMs = this.rttMs === undefined ? rtt : this.rttMs * 0.7 + rtt * 0.3;
    if (this.sentBytes >= MIN_THROUGHPUT_BYTES) {
      const bps = (this.sentBytes * 1000) / Math.max(1, rtt);
      this.bytesPerSecond = this.bytesPerSecond === undefined ? bps : this.bytesPerSecond * 0.7 + bps * 0.3;
    }
    if (this.rttMs >= SLOW_RTT_MS) this.quality = Math.max(this.bounds.min, this.quality - 10);
    else if (this.rttMs <= FAST_RTT_MS) this.quality = Math.min(this.bounds.max, this.quality + 5);
  }

  /** True when the link is measured slow enough that fewer bytes beat less CPU. */
  get slowLink(): boolean {
    return this.bytesPerSecond !== undefined && this.bytesPerSecond < SLOW_LINK_BPS;
  }
}
