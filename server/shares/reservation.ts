// One upload's claim on room under the folder's hard quota, kept in Redis so that parallel
// uploads through several broker replicas never pass the limit together. It is taken before
// bytes are written and grown as they arrive; it is settled (becomes the real size) or released
// by the upload, and expires by itself if the broker running the upload dies.
import type { QuotaRepository } from '../store/index.ts';
import type { Share } from './share.service.ts';

/** How long a reservation lives without being renewed (a running upload renews it as it writes). */
export const RESERVATION_TTL_MS = 120_000;
/** How far ahead of the bytes received a chunked upload reserves (fewer Redis calls). */
export const RESERVE_AHEAD_BYTES = 4 * 1024 * 1024;

export class UploadReservation {
  /** Bytes held in Redis for this upload. */
  reservedBytes = 0;
  /** The folder's count and the other uploads' reservations, as last seen (for the error message). */
  usedBytes = 0;
  othersBytes = 0;
  private renewedAt = 0;

  constructor(
    private readonly quota: QuotaRepository,
    private readonly share: Share,
    private readonly folder: string,
    readonly id: string,
    /** Counts the folder when Redis has no count for it (first use, or the count expired). */
    private readonly recount: () => Promise<unknown>,
  ) {}

  /**
   * Makes sure `totalBytes` are reserved in all, asking for up to `aheadBytes` more; renews the
   * reservation when a third of its life has passed. False when the hard quota refuses.
   */
  async cover(totalBytes: number, aheadBytes: number): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const renew = Date.now() - this.renewedAt > RESERVATION_TTL_MS / 3;
      if (totalBytes <= this.reservedBytes && !renew) return true;
      const need = Math.max(0, totalBytes - this.reservedBytes);
      const r = await this.quota.reserve(this.share.name, this.folder, this.id, { needBytes: need, wantBytes: need > 0 ? need + aheadBytes : 0, hardBytes: this.share.quota.hardBytes, ttlMs: RESERVATION_TTL_MS });
      if (!r.known) {
        await this.recount();
        continue;
      }
      this.usedBytes = r.usedBytes;
      this.othersBytes = r.othersBytes;
      if (!r.granted) return false;
      this.renewedAt = Date.now();
      // Less than asked for only when the reservation had expired: ask again for the rest.
      this.reservedBytes = r.reservedBytes;
      if (totalBytes <= this.reservedBytes) return true;
    }
    return false;
  }

  /** The upload is stored: the reservation becomes the real change to the folder's count. */
  settle(deltaBytes: number, deltaFiles: number): Promise<void> {
    return this.quota.settle(this.share.name, this.folder, this.id, { bytes: deltaBytes, files: deltaFiles });
  }

  /** The upload failed or was aborted: the room goes back. */
  release(): Promise<void> {
    return this.quota.release(this.share.name, this.folder, this.id);
  }
}
