/**
 * Shared fixtures for the traffic-shaping control tests (unit and halyardctl e2e): a policy
 * file with a rate per recipient domain and a concurrency per (localip, grouping), a suspend
 * file with a list value and a tagged suspend, facts, and a helper that brings one
 * destination to both limits through the engine's own admission.
 */
import assert from 'node:assert/strict';
import type { PolicyConfig, SuspendConfig } from '../../src/config/queue-files';
import type { Facts, FieldValues, ShapingEngine, Ticket } from '../../src/shaping/types';

export const POLICIES: PolicyConfig = {
  file: '/etc/halyard/smtpd-policy.yaml',
  rate: { algorithm: 'tokenbucket' },
  policies: [
    { fields: ['recipientdomain'], conditions: [], default: { rate: { messages: 2, seconds: 3600 } } },
    { fields: ['localip', 'grouping'], conditions: [], default: { concurrency: 1 } },
  ],
};
export const SUSPENDS: SuspendConfig = {
  file: '/etc/halyard/smtpd-suspend.yaml',
  suspends: [
    { match: { transportid: 'customer1', recipientdomain: ['gmail.com', 'googlemail.com'] } },
    { match: { jobid: 'bulk' }, tag: 'nonworkhours' },
  ],
};
export const NO_POLICY = 'no policy in /etc/halyard/smtpd-policy.yaml has the fields [jobid]: a dynamic condition applies to a counter the policy file defines';

export function facts(v: FieldValues): Facts {
  return { tenantid: '', jobid: '', transportid: '', localip: '', grouping: '', remoteip: '', remotemx: '', recipientdomain: '', ...v };
}

/** Deliveries to example.net from 192.0.2.1 (&google): both rate tokens used, the one concurrency slot held. */
export function throttle(engine: ShapingEngine, now: number): { f: Facts; ticket: Ticket } {
  const f = facts({ recipientdomain: 'example.net', localip: '192.0.2.1', grouping: '&google' });
  const first = engine.admit(f, now);
  assert.ok(first.ok);
  engine.release(first.ticket, now);
  const second = engine.admit(f, now);
  assert.ok(second.ok);
  return { f, ticket: second.ticket };
}

