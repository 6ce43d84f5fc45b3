/**
 * What each control-socket command does, given the daemon's `ControlContext`.
 *
 * Inputs: the decoded request (`internal` form, messages.ts) or undefined for commands
 * without a body. Outputs: the response object (undefined for an empty '+' reply) or, for
 * export, raw bytes.
 * Errors: a `ControlError` thrown here or by a callback becomes the 'E' text. Reloads that are
 * refused answer 'E' with every error on its own line; the running configuration stays.
 * Commands of services the daemon does not offer (yet) answer "… is not available".
 */
import type { CommandName, RequestOf, ResponseOf } from './commands';
import { ControlError, type ControlContext, type QueueControl, type ReloadOutcome, type ShapingControl } from './context';
import { compileStringMatch } from './match';
import type * as M from './messages';
import { buildProcessStats, type ProcessFigures } from './stats';
import type { JsonValue } from '../hooks/memory';

export interface HandlerEnv {
  ctx: ControlContext;
  process: () => ProcessFigures;
}

type Handler<K extends CommandName> = (env: HandlerEnv, req: RequestOf<K>) => Promise<ResponseOf<K>> | ResponseOf<K>;
export type HandlerTable = { [K in CommandName]: Handler<K> };

function reloaded(what: string, outcome: ReloadOutcome): undefined {
  if (!outcome.ok) {
    const n = outcome.errors.length;
    throw new ControlError(`${what} not reloaded (${n} error${n === 1 ? '' : 's'}); the running configuration is kept:\n${outcome.errors.join('\n')}`);
  }
  return undefined;
}

function queue(env: HandlerEnv): QueueControl {
  if (!env.ctx.queue) throw new ControlError('queue commands are not available in this daemon');
  return env.ctx.queue;
}

function shaping(env: HandlerEnv): ShapingControl {
  if (!env.ctx.shaping) throw new ControlError('suspend and policy commands are not available in this daemon');
  return env.ctx.shaping;
}

function requireKey(key: string | undefined): string {
  if (!key) throw new ControlError('a key is required');
  return key;
}

function parseJson(key: string, text: string | undefined): JsonValue {
  try {
    return JSON.parse(text ?? '') as JsonValue;
  } catch {
    throw new ControlError(`the value for key ${JSON.stringify(key)} is not JSON (strings are written with quotes: "\\"text\\"")`);
  }
}

function json(v: JsonValue | undefined): string | undefined {
  return v === undefined ? undefined : JSON.stringify(v);
}

function memoryList(env: HandlerEnv, req: M.HSLMemoryListRequest): M.HSLMemoryListResponse {
  const keyMatch = req.condition?.key;
  const matches = keyMatch ? compileStringMatch(keyMatch) : () => true;
  const offset = req.paging?.offset ?? 0;
  const limit = req.paging?.limit || Infinity;
  return { keys: env.ctx.memory.list().filter(matches).slice(offset, offset + limit) };
}

async function resolverClear(env: HandlerEnv, domain?: string): Promise<number> {
  if (!env.ctx.resolverClear) throw new ControlError('the resolver cache is not available in this daemon');
  return env.ctx.resolverClear(domain || undefined);
}

export const HANDLERS: HandlerTable = {
  processStats: async (env) => buildProcessStats(await env.ctx.processStats(), env.process()),
  configReload: async (env) => reloaded('smtpd-app.yaml', await env.ctx.reloadRunning()),
  suspendReload: async (env) => reloaded('smtpd-suspend.yaml', await env.ctx.reloadSuspend()),
  policyReload: async (env) => reloaded('smtpd-policy.yaml', await env.ctx.reloadPolicy()),
  deliveryReload: async (env) => reloaded('smtpd-delivery.yaml', await env.ctx.reloadDelivery()),

  memoryFetch: (env, req) => ({ value: json(env.ctx.memory.fetch(requireKey(req.key))) }),
  memoryStore: (env, req) => {
    const key = requireKey(req.key);
    const previous = env.ctx.memory.store(key, parseJson(key, req.value));
    return req.return ? { value: json(previous) } : {};
  },
  memoryDelete: (env, req) => {
    const previous = env.ctx.memory.delete(requireKey(req.key));
    return { affected: previous === undefined ? 0 : 1, ...(req.return ? { value: json(previous) } : {}) };
  },
  memoryList,

  resolverClearAll: async (env) => {
    await resolverClear(env);
    return undefined;
  },
  resolverCacheClear: async (env, req) => ({ affected: await resolverClear(env, req.domain?.value) }),

  queueGroupBy: (env, req) => queue(env).groupBy(req),
  queueImport: (env, req) => queue(env).import(req),
  queueList: (env, req) => queue(env).list(req),
  queueUpdate: (env, req) => queue(env).update(req),
  queueQuota: (env, req) => queue(env).quota(req),
  queueUnload: (env, req) => queue(env).unload(req),
  queueExport: (env, req) => queue(env).export(req),

  suspendList: (env, req) => shaping(env).suspendList(req),
  suspendAdd: (env, req) => shaping(env).suspendAdd(req),
  suspendDelete: (env, req) => shaping(env).suspendDelete(req),
  suspendUpdate: (env, req) => shaping(env).suspendUpdate(req),
  policyList: (env) => shaping(env).policyList(),
  policyAdd: (env, req) => shaping(env).policyAdd(req),
  policyDelete: (env, req) => shaping(env).policyDelete(req),
  policyUpdate: (env, req) => shaping(env).policyUpdate(req),
  rateRefill: (env, req) => shaping(env).rateRefill(req),
};
