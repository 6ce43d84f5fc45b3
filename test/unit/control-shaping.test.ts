/**
 * The control-socket traffic-shaping commands (src/control/shaping.ts) over the real engine
 * (src/shaping/engine.ts) with a fixed clock: each command, what the engine holds afterwards,
 * bad requests refused with a text for the client, and the commands over a real ControlServer
 * with requests encoded by `protoc --encode` against the reference schema and replies decoded
 * by `protoc --decode` (skipped without protoc).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ControlClient, type Reply } from '../../src/control/client';
import { ControlError, type ControlContext } from '../../src/control/context';
import { ControlServer } from '../../src/control/server';
import { shapingControl } from '../../src/control/shaping';
import { InProcessMemoryStore } from '../../src/hooks/memory';
import { createShapingEngine } from '../../src/shaping/engine';
import { ShapingError } from '../../src/shaping/types';
import { protocDecode, protocEncode, protocSkip, SILENT_LOG, tempDir } from './control-helpers';
import { facts, NO_POLICY, POLICIES, SUSPENDS, throttle } from './control-shaping-fixtures';

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);

function setup() {
  const engine = createShapingEngine();
  engine.setPolicies(POLICIES);
  engine.setSuspends(SUSPENDS);
  const clock = { now: T0 };
  const ctl = shapingControl(engine, { now: () => clock.now });
  const suspend = (id: string) => engine.listSuspends(clock.now, { id })[0];
  const condition = (id: string) => engine.listConditions(clock.now).find((c) => c.id === id);
  return { engine, clock, ctl, suspend, condition };
}

/** The ControlError text of a call that must be refused. */
async function refused(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof ControlError, `expected a ControlError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('the request was not refused');
}

test('t adds a dynamic suspend that holds its destination; s lists it with its fields, TTL left and tag', async () => {
  const { ctl, clock, engine } = setup();
  const { id } = await ctl.suspendAdd({ recipientdomain: { value: 'example.com' }, localip: { value: '192.0.2.7' }, ttl: 600, tag: { value: 'maintenance' } });
  assert.ok(id);
  const held = engine.peek(facts({ recipientdomain: 'example.com', localip: '192.0.2.7' }), clock.now);
  assert.deepEqual(held, { ok: false, reason: 'suspend', until: T0 + 600_000, tag: 'maintenance' });
  assert.equal(engine.peek(facts({ recipientdomain: 'example.com', localip: '192.0.2.8' }), clock.now).ok, true);
  clock.now += 100_000;
  const res = await ctl.suspendList({ id, filter: 'id' });
  assert.deepEqual(res.items, [{ source: 'DYNAMIC', id, localip: { value: '192.0.2.7' }, recipientdomain: { value: 'example.com' }, ttl: 500, tag: { value: 'maintenance' } }]);
});

test('t with a caller-chosen id uses it; the same fields again update the one suspend', async () => {
  const { ctl, engine, clock, suspend } = setup();
  assert.deepEqual(await ctl.suspendAdd({ id: 'maint-1', jobid: { value: 'newsletter' } }), { id: 'maint-1' });
  assert.deepEqual(await ctl.suspendAdd({ jobid: { value: 'newsletter' }, ttl: 60 }), { id: 'maint-1' });
  assert.equal(suspend('maint-1').ttl, 60);
  assert.equal(engine.listSuspends(clock.now).filter((i) => i.source === 'DYNAMIC').length, 1);
  // A refusal of the engine reaches the client with its own text.
  assert.equal(await refused(() => ctl.suspendAdd({ id: 'maint-1', jobid: { value: 'other' } })), 'a suspend with id maint-1 already exists with other fields');
});

test('t without fields suspends everything; bad values are refused with a clear text', async () => {
  const { ctl, engine, clock } = setup();
  await ctl.suspendAdd({ ttl: 30 });
  assert.equal(engine.peek(facts({ recipientdomain: 'anything.example' }), clock.now).ok, false);
  assert.equal(await refused(() => ctl.suspendAdd({ recipientdomain: { value: 'x.example' }, tag: { value: 'x'.repeat(33) } })), 'tag is 33 characters long; at most 32 are allowed');
  assert.equal(await refused(() => ctl.suspendAdd({ recipientdomain: { value: 'x.example' }, ttl: -5 })), 'ttl must be a number of seconds >= 0 (0 = no expiry), not -5');
  assert.equal(await refused(() => ctl.suspendAdd({ remoteip: { value: 'mx.example.com' } })), 'remoteip "mx.example.com" is not an IP address');
  assert.equal(await refused(() => ctl.suspendAdd({ transportid: {} })), 'transportid is empty; leave the field out to match any value');
  // A tag of exactly 32 characters is fine.
  assert.ok((await ctl.suspendAdd({ jobid: { value: 'j' }, tag: { value: 'y'.repeat(32) } })).id);
});

test('s lists static and dynamic suspends; pickup adds the counters of pickup policies at their limit', async () => {
  const { ctl, engine, clock } = setup();
  await ctl.suspendAdd({ id: 'd1', recipientdomain: { value: 'gmail.com' } });
  throttle(engine, clock.now);
  const plain = await ctl.suspendList({});
  assert.deepEqual(plain.items?.map((i) => `${i.source} ${i.id}`), ['STATIC static:0', 'STATIC static:1', 'DYNAMIC d1']);
  assert.deepEqual(plain.items?.[0], { source: 'STATIC', id: 'static:0', transportid: { value: 'customer1' }, recipientdomain: { value: 'gmail.com,googlemail.com' } });
  assert.deepEqual(plain.items?.[1], { source: 'STATIC', id: 'static:1', jobid: { value: 'bulk' }, tag: { value: 'nonworkhours' } });
  const all = await ctl.suspendList({ condition: { pickup: true }, filter: 'condition' });
  const counters = all.items?.slice(3).sort((a, b) => (a.source ?? '').localeCompare(b.source ?? ''));
  assert.deepEqual(counters?.map((i) => [i.source, i.id]), [['CONCURRENCY', 'localip=192.0.2.1,grouping=&google'], ['RATE', 'recipientdomain=example.net']]);
  assert.deepEqual(counters?.[0], { source: 'CONCURRENCY', id: 'localip=192.0.2.1,grouping=&google', localip: { value: '192.0.2.1' }, grouping: { value: '&google' } });
  // The rate counter holds until its next token (one per 1800 s).
  assert.ok(counters?.[1].ttl !== undefined && counters[1].ttl > 0 && counters[1].ttl <= 1800);
});

test('s filters by field value (case-insensitive, list elements), by any of several localips, by tag; paging.limit cuts', async () => {
  const { ctl, engine, clock } = setup();
  throttle(engine, clock.now);
  await ctl.suspendAdd({ id: 'a', localip: { value: '192.0.2.1' } });
  await ctl.suspendAdd({ id: 'b', localip: { value: '192.0.2.2' }, tag: { value: 't' } });
  await ctl.suspendAdd({ id: 'c', localip: { value: '2001:db8::1' } });
  const ids = async (req: Parameters<typeof ctl.suspendList>[0]) => (await ctl.suspendList(req)).items?.map((i) => i.id);
  assert.deepEqual(await ids({ condition: { recipientdomain: { value: 'GoogleMail.com' } } }), ['static:0']);
  assert.deepEqual(await ids({ condition: { localips: ['192.0.2.1', '2001:DB8:0::1'] } }), ['a', 'c']);
  assert.deepEqual(await ids({ condition: { localips: ['192.0.2.1'], pickup: true } }), ['a', 'localip=192.0.2.1,grouping=&google']);
  assert.deepEqual(await ids({ condition: { tag: { value: 't' } } }), ['b']);
  assert.deepEqual(await ids({ condition: { transportid: { value: 'customer1' }, recipientdomain: { value: 'gmail.com' } } }), ['static:0']);
  assert.deepEqual(await ids({ condition: { transportid: { value: 'customer2' } } }), []);
  assert.deepEqual(await ids({ paging: { limit: 2 } }), ['static:0', 'static:1']);
  assert.deepEqual(await ids({ id: 'nope', filter: 'id' }), []);
});

test('O changes TTL and tag; 0 or no ttl leaves the TTL; unknown id affects 0; nothing to change is refused', async () => {
  const { ctl, suspend } = setup();
  await ctl.suspendAdd({ id: 's1', jobid: { value: 'j' }, ttl: 60 });
  assert.deepEqual(await ctl.suspendUpdate({ id: 's1', ttl: 3600 }), { affected: 1 });
  assert.equal(suspend('s1').ttl, 3600);
  assert.deepEqual(await ctl.suspendUpdate({ id: 's1', tag: { value: 'later' }, ttl: 0 }), { affected: 1 });
  assert.deepEqual([suspend('s1').ttl, suspend('s1').tag], [3600, 'later']);
  assert.deepEqual(await ctl.suspendUpdate({ id: 's1', tag: {} }), { affected: 1 });
  assert.equal(suspend('s1').tag, undefined);
  assert.deepEqual(await ctl.suspendUpdate({ id: 'gone', ttl: 5 }), { affected: 0 });
  assert.deepEqual(await ctl.suspendUpdate({ id: 'static:0', ttl: 5 }), { affected: 0 });
  assert.equal(await refused(() => ctl.suspendUpdate({ id: 's1' })), 'nothing to update: give ttl (seconds from now) or tag');
  assert.equal(await refused(() => ctl.suspendUpdate({ ttl: 5 })), 'the id of the suspend is required');
  assert.match(await refused(() => ctl.suspendUpdate({ id: 's1', tag: { value: 'z'.repeat(40) } })), /at most 32/);
});

test('u deletes a dynamic suspend once and its destination flows again; a missing id is refused', async () => {
  const { ctl, engine, clock } = setup();
  await ctl.suspendAdd({ id: 's1', jobid: { value: 'j' } });
  assert.equal(engine.peek(facts({ jobid: 'j' }), clock.now).ok, false);
  assert.deepEqual(await ctl.suspendDelete({ id: 's1' }), { affected: 1 });
  assert.equal(engine.peek(facts({ jobid: 'j' }), clock.now).ok, true);
  assert.deepEqual(await ctl.suspendDelete({ id: 's1' }), { affected: 0 });
  assert.deepEqual((await ctl.suspendList({})).items?.map((i) => i.source), ['STATIC', 'STATIC']);
  assert.equal(await refused(() => ctl.suspendDelete({})), 'the id of the suspend is required');
});

test('w adds a condition to an existing policy that the engine applies; v lists it with fields, if, then and TTL', async () => {
  const { ctl, engine, clock, condition } = setup();
  const { id } = await ctl.policyAdd({
    fields: { localip: true, grouping: true },
    if: { grouping: { value: '&google' } },
    then: { rate: { count: 10, interval: 60 }, concurrency: 2, tag: { value: 'backoff' }, properties: { 'backoff-ttl': '600' } },
    ttl: 900,
  });
  assert.deepEqual(condition(id!)?.fields, ['localip', 'grouping']);
  assert.deepEqual(condition(id!)?.then, { rate: { messages: 10, seconds: 60 }, concurrency: 2, tag: 'backoff', properties: { 'backoff-ttl': '600' } });
  // Concurrency 2 instead of the default 1: a second delivery from 192.0.2.1 to &google may start.
  const f = facts({ localip: '192.0.2.1', grouping: '&google', recipientdomain: 'a.example' });
  assert.equal(engine.admit(f, clock.now).ok, true);
  assert.equal(engine.admit(f, clock.now).ok, true);
  assert.equal(engine.admit(f, clock.now).ok, false);
  clock.now += 300_000;
  assert.deepEqual(await ctl.policyList(), {
    items: [{
      id,
      fields: { localip: true, grouping: true },
      if: { grouping: { value: '&google' } },
      then: { rate: { count: 10, interval: 60 }, concurrency: 2, tag: { value: 'backoff' }, properties: { 'backoff-ttl': '600' } },
      ttl: 600,
    }],
  });
  const stop = await ctl.policyAdd({ id: 'halt', fields: { recipientdomain: true }, if: { recipientdomain: { value: 'example.org' } }, then: { stop: true } });
  assert.equal(stop.id, 'halt');
  assert.deepEqual(condition('halt')?.then, { stop: true });
  assert.equal(engine.peek(facts({ recipientdomain: 'example.org' }), clock.now).ok, false);
});

test('w refuses bad conditions with a clear text, and passes on the engine\'s refusal', async () => {
  const { ctl } = setup();
  const then = { concurrency: 1 };
  assert.match(await refused(() => ctl.policyAdd({ if: { recipientdomain: { value: 'a.example' } }, then })), /^fields is empty: name the fields of the policy/);
  assert.equal(await refused(() => ctl.policyAdd({ fields: { recipientdomain: true }, if: { jobid: { value: 'j' } }, then })), "if.jobid is not one of the condition's fields (recipientdomain)");
  assert.equal(await refused(() => ctl.policyAdd({ fields: { recipientdomain: true }, if: { recipientdomain: { value: 'a.example' } } })), 'then sets nothing: give rate, concurrency, tag, stop or properties');
  assert.equal(await refused(() => ctl.policyAdd({ fields: { recipientdomain: true }, then: { rate: { count: 5 } } })), 'then.rate.interval must be a number of seconds > 0, not 0');
  assert.match(await refused(() => ctl.policyAdd({ fields: { recipientdomain: true }, then, ttl: -1 })), /^ttl must be a number of seconds >= 0/);
  assert.equal(await refused(() => ctl.policyAdd({ fields: { localip: true, grouping: true }, if: { localip: { value: 'eth0' } }, then })), 'if.localip "eth0" is not an IP address');
  assert.equal(await refused(() => ctl.policyAdd({ fields: { jobid: true }, then })), NO_POLICY);
});

test('P replaces the limits but keeps the properties; ttl alone keeps the limits; unknown id affects 0', async () => {
  const { ctl, condition } = setup();
  await ctl.policyAdd({ id: 'c1', fields: { recipientdomain: true }, if: { recipientdomain: { value: 'a.example' } }, then: { concurrency: 5, tag: { value: 'x' }, properties: { k: 'v' } }, ttl: 60 });
  assert.deepEqual(await ctl.policyUpdate({ id: 'c1', then: { rate: { count: 1, interval: 10 } } }), { affected: 1 });
  assert.deepEqual(condition('c1')?.then, { rate: { messages: 1, seconds: 10 }, properties: { k: 'v' } });
  assert.equal(condition('c1')?.ttl, 60);
  assert.deepEqual(await ctl.policyUpdate({ id: 'c1', ttl: 120 }), { affected: 1 });
  assert.equal(condition('c1')?.ttl, 120);
  assert.deepEqual(condition('c1')?.then.rate, { messages: 1, seconds: 10 });
  assert.deepEqual(await ctl.policyUpdate({ id: 'other', then: { concurrency: 1 } }), { affected: 0 });
  assert.equal(await refused(() => ctl.policyUpdate({ id: 'c1' })), 'nothing to update: give then (the new limits) or ttl (seconds from now)');
  assert.equal(await refused(() => ctl.policyUpdate({ then: { concurrency: 1 } })), 'the id of the policy condition is required');
});

test('x deletes a condition once', async () => {
  const { ctl } = setup();
  await ctl.policyAdd({ id: 'c1', fields: { recipientdomain: true }, then: { concurrency: 1 } });
  assert.deepEqual(await ctl.policyDelete({ id: 'c1' }), { affected: 1 });
  assert.deepEqual(await ctl.policyDelete({ id: 'c1' }), { affected: 0 });
  assert.deepEqual(await ctl.policyList(), { items: [] });
});

test('B refills the matching rate buckets so a throttled destination may go again; tokens must be above 0', async () => {
  const { ctl, engine, clock } = setup();
  const { f, ticket } = throttle(engine, clock.now);
  engine.release(ticket, clock.now);
  assert.equal(engine.peek(f, clock.now).ok, false);
  assert.deepEqual(await ctl.rateRefill({ recipientdomain: { value: 'other.example' }, tokens: 5 }), { affected: 0 });
  assert.deepEqual(await ctl.rateRefill({ recipientdomain: { value: 'Example.NET' }, tokens: 1 }), { affected: 1 });
  assert.equal(engine.peek(f, clock.now).ok, true);
  assert.deepEqual(await ctl.rateRefill({ tokens: 1.5 }), { affected: 1 });
  assert.equal(await refused(() => ctl.rateRefill({ recipientdomain: { value: 'gmail.com' } })), 'tokens must be a number above 0, not 0');
  assert.equal(await refused(() => ctl.rateRefill({ tokens: -2 })), 'tokens must be a number above 0, not -2');
});

test('an engine failure that is not a ShapingError stays a bug (not shown to the client as a refusal)', async () => {
  const { ctl, engine } = setup();
  engine.listConditions = () => {
    throw new TypeError('boom');
  };
  await assert.rejects(async () => ctl.policyList(), (err: Error) => err instanceof TypeError && !(err instanceof ControlError));
  engine.deleteCondition = () => {
    throw new ShapingError('conditions from smtpd-policy.yaml cannot be deleted');
  };
  assert.equal(await refused(() => ctl.policyDelete({ id: 'x' })), 'conditions from smtpd-policy.yaml cannot be deleted');
});

// ---- over a real ControlServer, bytes from protoc ------------------------------------------

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function serve() {
  const { engine, ctl, suspend, condition, clock } = setup();
  const dir = tempDir();
  dirs.push(dir);
  const file = path.join(dir, 'smtpd.ctl');
  const ok = { ok: true } as const;
  const context: ControlContext = {
    processStats: () => ({}),
    reloadRunning: () => ok,
    reloadPolicy: () => ok,
    reloadSuspend: () => ok,
    reloadDelivery: () => ok,
    memory: new InProcessMemoryStore(),
    shaping: ctl,
  };
  const server = new ControlServer({ socket: { path: file }, context, log: SILENT_LOG });
  await server.listen();
  return { server, client: await ControlClient.connect({ path: file }), engine, suspend, condition, clock };
}

/** Send protoc-encoded text as the body of `letter`. */
function send(client: ControlClient, letter: string, type: string | undefined, text = ''): Promise<Reply> {
  return client.request(letter, type ? protocEncode(type, text) : undefined);
}

function ok(r: Reply): Buffer {
  assert.equal(r.status, '+', r.payload.toString());
  return r.payload;
}

test('suspends over the socket: t, s, O, u with protoc bytes; the replies decode with protoc', { skip: protocSkip() }, async () => {
  const { server, client, suspend } = await serve();
  try {
    const added = protocDecode('SuspendAddResponse', ok(await send(client, 't', 'SuspendAddRequest', 'id: "maint" recipientdomain { value: "example.com" } ttl: 600 tag { value: "maintenance" }')));
    assert.equal(added.trim(), 'id: "maint"');
    assert.deepEqual(suspend('maint').match, { recipientdomain: 'example.com' });
    const listed = protocDecode('SuspendResponse', ok(await send(client, 's', 'SuspendRequest', 'condition { recipientdomain { value: "example.com" } }')));
    assert.match(listed, /source: DYNAMIC\n\s+id: "maint"\n\s+recipientdomain \{\n\s+value: "example.com"\n\s+\}\n\s+ttl: 600\n\s+tag \{\n\s+value: "maintenance"/);
    assert.equal(protocDecode('SuspendUpdateResponse', ok(await send(client, 'O', 'SuspendUpdateRequest', 'id: "maint" ttl: 60'))).trim(), 'affected: 1');
    assert.equal(protocDecode('SuspendDeleteResponse', ok(await send(client, 'u', 'SuspendDeleteRequest', 'id: "maint"'))).trim(), 'affected: 1');
    assert.equal(protocDecode('SuspendDeleteResponse', ok(await send(client, 'u', 'SuspendDeleteRequest', 'id: "maint"'))).trim(), '');
    // A bad request is an E reply with the reason; the connection goes on.
    const bad = await send(client, 't', 'SuspendAddRequest', 'recipientdomain { value: "example.com" } tag { value: "0123456789012345678901234567890123" }');
    assert.deepEqual([bad.status, bad.payload.toString()], ['E', 'tag is 34 characters long; at most 32 are allowed']);
    const byId = protocDecode('SuspendResponse', ok(await send(client, 's', 'SuspendRequest', 'id: "static:1"')));
    assert.match(byId, /id: "static:1"\n\s+jobid \{\n\s+value: "bulk"\n\s+\}\n\s+tag \{\n\s+value: "nonworkhours"/);
  } finally {
    client.close();
    await server.close();
  }
});

test('policy conditions over the socket: w, v, P, x and B with protoc bytes; bad ones answer E', { skip: protocSkip() }, async () => {
  const { server, client, engine, condition, clock } = await serve();
  try {
    const { f, ticket } = throttle(engine, clock.now);
    engine.release(ticket, clock.now);
    const add = 'id: "backoff" fields { recipientdomain: true } if { recipientdomain { value: "example.org" } } then { rate { count: 10 interval: 60 } concurrency: 2 properties { key: "reason" value: "421" } } ttl: 300';
    assert.equal(protocDecode('PolicyConditionAddResponse', ok(await send(client, 'w', 'PolicyConditionAddRequest', add))).trim(), 'id: "backoff"');
    const list = protocDecode('PolicyConditionResponse', ok(await send(client, 'v', undefined)));
    assert.match(list, /id: "backoff"\n\s+fields \{\n\s+recipientdomain: true\n\s+\}\n\s+if \{\n\s+recipientdomain \{\n\s+value: "example.org"/);
    assert.match(list, /rate \{\n\s+count: 10\n\s+interval: 60\n\s+\}\n\s+concurrency: 2\n\s+properties \{\n\s+key: "reason"\n\s+value: "421"/);
    assert.equal(protocDecode('PolicyConditionUpdateResponse', ok(await send(client, 'P', 'PolicyConditionUpdateRequest', 'id: "backoff" then { concurrency: 1 }'))).trim(), 'affected: 1');
    assert.deepEqual(condition('backoff')?.then, { concurrency: 1, properties: { reason: '421' } });
    assert.equal(engine.peek(f, clock.now).ok, false);
    assert.equal(protocDecode('PolicyRateRefillResponse', ok(await send(client, 'B', 'PolicyRateRefillRequest', 'recipientdomain { value: "example.net" } tokens: 3'))).trim(), 'affected: 1');
    assert.equal(engine.peek(f, clock.now).ok, true);
    assert.equal(protocDecode('PolicyConditionDeleteResponse', ok(await send(client, 'x', 'PolicyConditionDeleteRequest', 'id: "backoff"'))).trim(), 'affected: 1');
    const noFields = await send(client, 'w', 'PolicyConditionAddRequest', 'then { concurrency: 1 }');
    assert.equal(noFields.status, 'E');
    assert.match(noFields.payload.toString(), /^fields is empty/);
    const unknown = await send(client, 'w', 'PolicyConditionAddRequest', 'fields { jobid: true } then { concurrency: 1 }');
    assert.deepEqual([unknown.status, unknown.payload.toString()], ['E', NO_POLICY]);
    const noTokens = await send(client, 'B', 'PolicyRateRefillRequest', 'recipientdomain { value: "example.net" }');
    assert.deepEqual([noTokens.status, noTokens.payload.toString()], ['E', 'tokens must be a number above 0, not 0']);
  } finally {
    client.close();
    await server.close();
  }
});
