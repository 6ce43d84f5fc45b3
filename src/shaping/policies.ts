/**
 * The pickup policies of smtpd-policy.yaml compiled for lookups (halon-core.md §4.4).
 *
 * Inputs: `PolicyConfig`, the groupings, the dynamic conditions.
 * Outputs: per policy its counter (field mask), and for a counter key the `LimitSource` that
 * applies: a live dynamic condition of that counter (most recent first), else the first file
 * condition whose `if` matches, else the policy's `default`; null when there is none (the key
 * is not counted).
 * Invariants: a policy is identified by its field set (the config loader refuses two policies
 * with the same fields), so a counter survives a reload that keeps its policy even when the
 * fields are listed in another order. File limits are wrapped once, at compile time.
 * Errors: none beyond `compileMatch`'s for values the loader would have refused.
 */
import type { Policy, PolicyConfig } from '../config/queue-files';
import { limitSource, type ConditionStore, type LimitSource } from './conditions';
import { compileFieldMatch, matches, maskOf, type CompiledMatch, type GroupingTable } from './match';
import type { ShapingField } from './types';

export interface CompiledPolicy {
  readonly mask: number;
  readonly fields: readonly ShapingField[];
  readonly conditions: ReadonlyArray<{ readonly match: CompiledMatch; readonly source: LimitSource }>;
  readonly fallback: LimitSource | null;
}

export class PolicySet {
  readonly policies: readonly CompiledPolicy[];
  readonly algorithm: PolicyConfig['rate']['algorithm'];
  /** The fields the policies count by or test. */
  readonly fieldMask: number;
  private readonly masks: ReadonlySet<number>;

  constructor(config: PolicyConfig, groupings: GroupingTable) {
    this.algorithm = config.rate.algorithm;
    this.policies = config.policies.map((p) => compilePolicy(p, groupings));
    let m = 0;
    for (const p of this.policies) {
      m |= p.mask;
      for (const c of p.conditions) m |= c.match.mask;
    }
    this.fieldMask = m;
    this.masks = new Set(this.policies.map((p) => p.mask));
  }

  /** A policy counts by exactly these fields. */
  hasCounter(mask: number): boolean {
    return this.masks.has(mask);
  }

  /** The limits of a counter key (raw facts for file conditions, lower-cased for dynamic ones). */
  resolve(p: CompiledPolicy, raw: readonly string[], lower: readonly string[], dynamic: ConditionStore, now: number): LimitSource | null {
    const d = dynamic.lookup(p.mask, lower, now);
    if (d) return d.source;
    for (const c of p.conditions) if (matches(c.match, raw)) return c.source;
    return p.fallback;
  }
}

function compilePolicy(p: Policy, groupings: GroupingTable): CompiledPolicy {
  return {
    mask: maskOf(p.fields),
    fields: [...p.fields],
    conditions: p.conditions.map((c) => ({ match: compileFieldMatch(c.if, groupings), source: limitSource(c.then) })),
    fallback: p.default ? limitSource(p.default) : null,
  };
}
