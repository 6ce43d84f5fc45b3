/**
 * Helpers of the traffic-shaping tests: facts with defaults, config objects as the loaders
 * produce them, a wake-event recorder, and admission loops over simulated time.
 */
import type { DeliveryConfig, Policy, PolicyConfig, SuspendConfig, Suspend } from '../../src/config/queue-files';
import type { QueuesConfig } from '../../src/config/types';
import { createShapingEngine } from '../../src/shaping/engine';
import type { Facts, ShapingEngine, Ticket, Verdict, WakeScope } from '../../src/shaping/types';

/** A fixed start of simulated time (aligned on a minute, so fixed windows start here). */
export const T0 = Date.UTC(2030, 0, 1, 0, 0, 0);

export function facts(over: Partial<Facts> = {}): Facts {
  return {
    tenantid: '',
    jobid: '',
    transportid: 'outbound',
    localip: '192.0.2.10',
    grouping: '',
    remoteip: '',
    remotemx: '',
    recipientdomain: 'example.com',
    ...over,
  };
}

export function policies(list: Policy[], algorithm: 'tokenbucket' | 'fixedwindow' = 'tokenbucket'): PolicyConfig {
  return { file: '/etc/halyard/smtpd-policy.yaml', rate: { algorithm }, policies: list };
}

export function suspends(list: Suspend[]): SuspendConfig {
  return { file: '/etc/halyard/smtpd-suspend.yaml', suspends: list };
}

export function delivery(d: Omit<DeliveryConfig, 'file'>): DeliveryConfig {
  return { file: '/etc/halyard/smtpd-delivery.yaml', ...d };
}

export function engineWith(opts: { grouping?: QueuesConfig['grouping']; policies?: PolicyConfig; suspends?: SuspendConfig; delivery?: DeliveryConfig } = {}): { engine: ShapingEngine; wakes: WakeScope[] } {
  const engine = createShapingEngine();
  if (opts.grouping) engine.setGrouping(opts.grouping);
  if (opts.policies) engine.setPolicies(opts.policies);
  if (opts.suspends) engine.setSuspends(opts.suspends);
  if (opts.delivery) engine.setDelivery(opts.delivery);
  const wakes: WakeScope[] = [];
  engine.onWake((w) => wakes.push(w));
  return { engine, wakes };
}

export function ticketOf(v: Verdict): Ticket {
  if (!v.ok) throw new Error(`expected an admission, got ${JSON.stringify(v)}`);
  return v.ticket;
}

/**
 * Every `stepMs` from `from` for `durationMs` (end excluded), offer attempts until one is
 * refused (at most 1000 per step), releasing each at once: the times of the admissions.
 */
export function admitOver(engine: ShapingEngine, f: Facts, from: number, durationMs: number, stepMs: number): number[] {
  const admitted: number[] = [];
  for (let t = from; t < from + durationMs; t += stepMs) {
    for (let i = 0; i < 1000; i++) {
      const v = engine.admit(f, t);
      if (!v.ok) break;
      admitted.push(t);
      engine.release(v.ticket, t);
    }
  }
  return admitted;
}
