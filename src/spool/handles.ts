/**
 * Read handles on segment files, for positional reads of bodies and records.
 *
 * One read-only FileHandle per segment, opened on first use and kept in a small LRU (at most
 * `max` idle handles) so a spool of many segments does not exhaust file descriptors. A handle is
 * never closed while a read on it is in flight (`readers` count); `forget(seq)` (the segment was
 * deleted) closes it once idle. Reads of the segment being appended work because appends only
 * add bytes after every offset the index hands out (records are indexed once written).
 *
 * Errors: a read past the end of the file rejects with code 'SPOOL_SHORT_READ'; open errors
 * (ENOENT for a deleted segment) reject as is.
 */
import { promises as fsp } from 'node:fs';

interface Slot {
  fh: Promise<fsp.FileHandle>;
  readers: number;
  doomed: boolean;
}

export class ReadHandles {
  private readonly slots = new Map<number, Slot>();

  constructor(private readonly pathOf: (seq: number) => string, private readonly max = 64) {}

  async read(seq: number, position: number, length: number): Promise<Buffer> {
    const slot = this.acquire(seq);
    try {
      const fh = await slot.fh;
      return await readExactly(fh, position, length);
    } finally {
      slot.readers--;
      if (slot.doomed && slot.readers === 0) void this.close(seq, slot);
      this.evict();
    }
  }

  /** The segment is gone: close its handle once no read uses it. */
  forget(seq: number): void {
    const slot = this.slots.get(seq);
    if (!slot) return;
    slot.doomed = true;
    if (slot.readers === 0) void this.close(seq, slot);
  }

  async closeAll(): Promise<void> {
    const all = [...this.slots.entries()];
    await Promise.all(all.map(([seq, slot]) => this.close(seq, slot)));
  }

  private acquire(seq: number): Slot {
    let slot = this.slots.get(seq);
    if (slot && !slot.doomed) {
      this.slots.delete(seq); // re-insert: Map order is the LRU order
    } else {
      const fh = fsp.open(this.pathOf(seq), 'r');
      slot = { fh, readers: 0, doomed: false };
      fh.catch(() => {
        if (this.slots.get(seq) === slot) this.slots.delete(seq);
      });
    }
    this.slots.set(seq, slot);
    slot.readers++;
    return slot;
  }

  private evict(): void {
    if (this.slots.size <= this.max) return;
    for (const [seq, slot] of this.slots) {
      if (this.slots.size <= this.max) break;
      if (slot.readers === 0) void this.close(seq, slot);
    }
  }

  private async close(seq: number, slot: Slot): Promise<void> {
    if (this.slots.get(seq) === slot) this.slots.delete(seq);
    try {
      await (await slot.fh).close();
    } catch {
      // open failed or already closed: nothing to release
    }
  }
}

export async function readExactly(fh: fsp.FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) {
      throw Object.assign(new Error(`spool: short read at ${position + got} (wanted ${length} bytes)`), { code: 'SPOOL_SHORT_READ' });
    }
    got += bytesRead;
  }
  return buf;
}
