/**
 * The bodies of the latest commits, kept in memory for a short while so that the first
 * delivery attempt, which usually comes right after the commit, does not read them back from
 * disk (a read on libuv's thread pool per message: about 0.1 ms of the main thread each, a
 * tenth of what relaying a 5 KB message costs).
 *
 * Bounded by bytes, oldest first out; a transaction leaves when it is finished (every entry
 * removed) or pushed out. Bodies larger than a quarter of the budget are not kept. Keyed by
 * the transaction's index object, so a later transaction with the same id never sees these.
 * The buffers are the ones given to commit: callers must not change them afterwards, which
 * every producer (SMTP, HTTP, import, DSN) already holds to (each body is its own buffer).
 */
export class RecentBodies<K extends object = object> {
  private readonly kept = new Map<K, { bodies: readonly Buffer[]; bytes: number }>();
  private bytes = 0;

  constructor(private readonly max: number) {}

  remember(key: K, bodies: readonly Buffer[]): void {
    let bytes = 0;
    for (const b of bodies) bytes += b.length;
    if (this.max <= 0 || bytes > this.max / 4 || this.kept.has(key)) return;
    this.kept.set(key, { bodies, bytes });
    this.bytes += bytes;
    for (const [k, v] of this.kept) {
      if (this.bytes <= this.max) break;
      this.kept.delete(k);
      this.bytes -= v.bytes;
    }
  }

  get(key: K | undefined, body: number): Buffer | undefined {
    return key === undefined ? undefined : this.kept.get(key)?.bodies[body];
  }

  forget(key: K): void {
    const v = this.kept.get(key);
    if (!v) return;
    this.kept.delete(key);
    this.bytes -= v.bytes;
  }

  /** Bytes held now. */
  get size(): number {
    return this.bytes;
  }
}
