/**
 * The package's public surface for hook authors: the hook types (`import type { EodHook } from
 * 'halyard'`, gone at run time) and the functions a hook calls on the daemon
 * (`import { queue_suspend } from 'halyard'`: the hook loader hands hooks this very module of
 * the running daemon, see hooks/services.ts).
 */
export type * from './hooks/types';
export type { Address, DsnParams, QueueId, QueueState, Reply } from './model/types';
export type { HookOutcome } from './hooks/runtime';
export {
  queue_suspend, queue_policy, queue_policy_delete, queue_quota,
  memory_store, memory_fetch, memory_exists, memory_delete, memory_inc, memory_dec,
} from './hooks/services';
export type { QueueSuspendOptions, QueuePolicyLimits } from './hooks/services';
