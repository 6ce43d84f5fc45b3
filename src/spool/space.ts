/**
 * Free-space watch for `spool.minfree` (halon-core.md: "refuse mail when disk nearly full").
 *
 * `hasSpace()` is synchronous (the SMTP server asks it at MAIL FROM and the spool at commit):
 * it answers from the last statfs of the spool directory minus the bytes the spool wrote since,
 * so a burst of commits cannot run past the threshold between two statfs calls. The owner calls
 * `refresh()` every second (the journal's unref'd maintenance timer); `wrote()` after each write
 * batch refreshes too (at most one statfs in flight, at most one every 100 ms). After ENOSPC (`markFull`) the answer is "no space" until
 * the next statfs says otherwise.
 *
 * Inodes: file systems that do not count inodes (btrfs reports f_files = 0) skip that check.
 * If statfs fails, the failure is logged once and space is assumed (failing open: refusing all
 * mail because of a monitoring error would be worse; a real ENOSPC still fails the write).
 */
import { promises as fsp } from 'node:fs';

export interface MinFree {
  bytes: number;
  inodes: number;
}

interface Snapshot {
  freeBytes: number;
  freeInodes: number;
  countsInodes: boolean;
}

type Warn = (obj: object, msg?: string) => void;

const BATCH_REFRESH_MS = 100;

export class SpaceMonitor {
  private snap: Snapshot | null = null;
  private writtenSince = 0;
  private inFlight: Promise<void> | null = null;
  private lastRefresh = 0;
  private warned = false;

  constructor(private readonly dir: string, private readonly minfree: MinFree, private readonly warn: Warn) {}

  hasSpace(): boolean {
    if (!this.snap) return true;
    if (this.freeBytes() < this.minfree.bytes) return false;
    return !this.snap.countsInodes || this.snap.freeInodes >= this.minfree.inodes;
  }

  /** Estimated free bytes right now (Infinity when unknown). */
  freeBytes(): number {
    return this.snap ? this.snap.freeBytes - this.writtenSince : Infinity;
  }

  /** Account for bytes just written and refresh soon. */
  wrote(bytes: number): void {
    this.writtenSince += bytes;
    if (Date.now() - this.lastRefresh >= BATCH_REFRESH_MS) void this.refresh();
  }

  markFull(): void {
    this.writtenSince = Infinity;
  }

  refresh(): Promise<void> {
    if (!this.inFlight) {
      this.lastRefresh = Date.now();
      this.inFlight = this.statfs().finally(() => {
        this.inFlight = null;
      });
    }
    return this.inFlight;
  }

  private async statfs(): Promise<void> {
    // Bytes written while statfs runs may or may not be in its answer; count them (pessimistic).
    const before = this.writtenSince;
    try {
      const s = await fsp.statfs(this.dir);
      this.snap = { freeBytes: s.bavail * s.bsize, freeInodes: s.ffree, countsInodes: s.files > 0 };
      this.writtenSince = Number.isFinite(before) ? this.writtenSince - before : 0;
    } catch (err) {
      if (!this.warned) this.warn({ err, dir: this.dir }, 'spool: statfs failed; minfree not enforced');
      this.warned = true;
    }
  }
}
