/**
 * What the control socket needs from the daemon: a small set of callbacks and services that
 * the daemon (src/control/daemon.ts) provides and tests replace with fakes.
 *
 * Contract for every callback: it may be synchronous or return a promise; it throws a
 * `ControlError` for a refusal the client should read (its message becomes the 'E' reply
 * text); any other exception is a bug — the client gets a bland "internal error" and the log
 * gets the details. Optional services (`queue`, `shaping`, `resolverClear`) that are absent
 * make their commands answer 'E' "… is not available".
 */
import type { MemoryStore } from '../hooks/memory';
import type * as M from './messages';

/** An error whose message is meant for the control-socket client. */
export class ControlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ControlError';
  }
}

/** A reload either took effect, or was refused with every error found (old config kept). */
export type ReloadOutcome = { ok: true } | { ok: false; errors: string[] };

type MaybeAsync<T> = T | Promise<T>;

/** Counters of one script kind (a hook phase); all cumulative except pending/running. */
export interface ScriptCounters {
  pending?: number;
  running?: number;
  finished?: number;
  errors?: number;
}

/** Resolver figures; `delivery/resolver.ts`' `ResolverStats` has this shape. */
export interface ResolverFigures {
  pending: number;
  dedup: number;
  running: number;
  maxrunning: number;
  cache: { maxsize: number; size: number; hits: number; misses: number; expires: number; evicts: number; skips?: number };
}

/**
 * The figures the daemon can give for `process-stats`; everything is optional and missing
 * figures are reported as 0. Process pid, run time and version are added by the server.
 */
export interface StatsInput {
  servers?: Array<{
    id: string;
    /** Connections open now. */
    connections: number;
    /** The configured limit; 0 or undefined = none. */
    maxconnections?: number;
    scripts?: Partial<Record<M.ServerHook, ScriptCounters>>;
  }>;
  resolver?: ResolverFigures;
  queue?: {
    /** Entries per state. */
    active?: number;
    defer?: number;
    hold?: number;
    update?: number;
    /** ACTIVE entries per priority, index = priority. */
    priorities?: number[];
    /** Outbound connections (delivery attempts in flight). */
    connections?: { concurrent: number; maxconcurrent?: number; pooling?: { size: number; maxsize: number; hits: number; misses: number; expires: number; evicts: number } };
    delivery?: { delivered: number; delayed: number; failed: number };
    scripts?: { predelivery?: ScriptCounters; postdelivery?: ScriptCounters };
    pickup?: { count?: number; skips?: number; misses?: number; pending?: number };
    policy?: { concurrency?: { counters?: number; suspends?: number }; rate?: { buckets?: number; suspends?: number }; dynamic?: { suspends?: number; conditions?: number } };
  };
}

/** The queue commands (F D G E J I and export); implemented by the queue engine. */
export interface QueueControl {
  list(req: M.QueueListRequest): MaybeAsync<M.QueueListResponse>;
  groupBy(req: M.QueueGroupByRequest): MaybeAsync<M.QueueGroupByResponse>;
  /** Entries that are busy (being delivered) are counted in `working` and left alone. */
  update(req: M.QueueUpdateRequest): MaybeAsync<M.QueueUpdateResponse>;
  import(req: M.QueueImportRequest): MaybeAsync<M.QueueImportResponse>;
  /** The '+' payload of an export: the stored message (opaque bytes to the control socket). */
  export(req: M.QueueExportRequest): MaybeAsync<Uint8Array>;
  quota(req: M.QueueQuotaRequest): MaybeAsync<M.QueueQuotaResponse>;
  unload(req: M.QueueUnloadRequest): MaybeAsync<M.QueueUnloadResponse>;
}

/** Suspends, dynamic policy conditions and rate buckets (s t u O v w x P B); traffic shaping. */
export interface ShapingControl {
  suspendList(req: M.SuspendRequest): MaybeAsync<M.SuspendResponse>;
  suspendAdd(req: M.SuspendAddRequest): MaybeAsync<M.SuspendAddResponse>;
  suspendUpdate(req: M.SuspendUpdateRequest): MaybeAsync<M.SuspendUpdateResponse>;
  suspendDelete(req: M.SuspendDeleteRequest): MaybeAsync<M.SuspendDeleteResponse>;
  policyList(): MaybeAsync<M.PolicyConditionResponse>;
  policyAdd(req: M.PolicyConditionAddRequest): MaybeAsync<M.PolicyConditionAddResponse>;
  policyUpdate(req: M.PolicyConditionUpdateRequest): MaybeAsync<M.PolicyConditionUpdateResponse>;
  policyDelete(req: M.PolicyConditionDeleteRequest): MaybeAsync<M.PolicyConditionDeleteResponse>;
  rateRefill(req: M.PolicyRateRefillRequest): MaybeAsync<M.PolicyRateRefillResponse>;
}

export interface ControlContext {
  processStats(): MaybeAsync<StatsInput>;
  /** `r`: smtpd-app.yaml (with hooks and certificates). */
  reloadRunning(): MaybeAsync<ReloadOutcome>;
  /** `p`: smtpd-policy.yaml. */
  reloadPolicy(): MaybeAsync<ReloadOutcome>;
  /** `o`: smtpd-suspend.yaml. */
  reloadSuspend(): MaybeAsync<ReloadOutcome>;
  /** `H`: smtpd-delivery.yaml. */
  reloadDelivery(): MaybeAsync<ReloadOutcome>;
  memory: MemoryStore;
  /** Empty the DNS cache (only `domain`'s entries when given); returns the entries removed. */
  resolverClear?(domain?: string): MaybeAsync<number>;
  queue?: QueueControl;
  shaping?: ShapingControl;
}
