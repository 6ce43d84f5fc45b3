/**
 * At most `size` attempts at a time to one first hop (address and port); the rest wait their
 * turn, first come first served.
 *
 * Why (docs/decisions.md B12): with no traffic-shaping policy, a queue of thousands of ACTIVE
 * entries for one host (a burst, or a restart after an outage) would otherwise open thousands
 * of connections to it at once; its listen backlog overflows and the attempts fail with
 * connect time-outs and are deferred. Through the window they reuse pooled connections
 * instead. Policies (smtpd-policy.yaml `concurrency`) still apply first, at pickup.
 * Invariants: a slot is released exactly once, when the attempt settles, whatever it returns
 * or throws; waiting costs one closure.
 */
import type { NextHop } from './nexthop';

export const DEFAULT_HOP_WINDOW = 64;

interface Line {
  running: number;
  waiting: Array<() => void>;
}

export class HopWindow {
  private readonly lines = new Map<string, Line>();

  constructor(private readonly size = DEFAULT_HOP_WINDOW) {}

  async run<T>(hops: NextHop[], work: () => Promise<T>): Promise<T> {
    const first = hops[0];
    const key = first ? `${first.addresses[0]}\u0000${first.port}` : '';
    let line = this.lines.get(key);
    if (!line) {
      line = { running: 0, waiting: [] };
      this.lines.set(key, line);
    }
    if (line.running >= this.size) {
      await new Promise<void>((resolve) => line!.waiting.push(resolve));
    } else {
      line.running++;
    }
    try {
      return await work();
    } finally {
      const next = line.waiting.shift();
      if (next) next(); // the slot passes on: running stays the same
      else if (--line.running === 0) this.lines.delete(key);
    }
  }

  /** Attempts waiting for a slot, over every hop. */
  get waiting(): number {
    let n = 0;
    for (const l of this.lines.values()) n += l.waiting.length;
    return n;
  }
}
