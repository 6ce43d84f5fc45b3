/**
 * What an admitted attempt holds (`Ticket` of types.ts): the counters it was counted against
 * and the limits that applied, so `release` gives back exactly what `admit` took, even after
 * a reload or a condition change.
 *
 * Inputs: (counter, limit source) pairs from the engine. Outputs: `policies` and `tags` for the
 * post-delivery hook, built on first read (most attempts have no hook that reads them) and
 * frozen; `drain` hands the counted pairs back once — a second release is a no-op.
 * Invariants: the counters are held in a private field, so they never show in JSON or in a
 * hook's view of the ticket.
 * Errors: none.
 */
import type { LimitSource } from './conditions';
import type { Counter } from './counters';
import { fieldsOf, valuesOfKey } from './match';
import type { AppliedPolicy, Ticket } from './types';

export class ShapingTicket implements Ticket {
  #held: Array<Counter | LimitSource>;
  #counted: boolean;
  #policies: readonly AppliedPolicy[] | undefined;

  /** `held`: counter, source, counter, source… of every policy that applied. */
  constructor(held: Array<Counter | LimitSource>, counted: boolean) {
    this.#held = held;
    this.#counted = counted;
  }

  get policies(): readonly AppliedPolicy[] {
    this.#policies ??= Object.freeze(pairs(this.#held).map(([c, s]) => applied(c, s)));
    return this.#policies;
  }

  get tags(): readonly string[] {
    const tags = new Set<string>();
    for (const p of this.policies) if (p.tag !== undefined) tags.add(p.tag);
    return Object.freeze([...tags]);
  }

  /** The counters this ticket counted against, once. */
  drain(): Counter[] {
    if (!this.#counted) return [];
    this.#counted = false;
    const out: Counter[] = [];
    for (const [c, s] of pairs(this.#held)) if (s.counted) out.push(c);
    return out;
  }

  toJSON(): { policies: readonly AppliedPolicy[]; tags: readonly string[] } {
    return { policies: this.policies, tags: this.tags };
  }
}

function pairs(held: Array<Counter | LimitSource>): Array<[Counter, LimitSource]> {
  const out: Array<[Counter, LimitSource]> = [];
  for (let i = 0; i < held.length; i += 2) out.push([held[i] as Counter, held[i + 1] as LimitSource]);
  return out;
}

function applied(c: Counter, s: LimitSource): AppliedPolicy {
  const l = s.limits;
  const p: AppliedPolicy = { fields: fieldsOf(c.mask), condition: valuesOfKey(c.mask, c.values) };
  if (s.id !== undefined) p.id = s.id;
  if (l.tag !== undefined) p.tag = l.tag;
  if (l.properties !== undefined) p.properties = { ...l.properties };
  if (l.concurrency !== undefined) p.concurrency = l.concurrency;
  if (l.rate !== undefined) p.rate = { ...l.rate };
  if (l.connectinterval !== undefined) p.connectinterval = l.connectinterval;
  return Object.freeze(p);
}
