/**
 * The package's public surface for hook authors: `import type { EodHook } from 'halyard'`.
 * Only types are exported; hook files are transpiled with esbuild, so type-only imports vanish
 * at run time and a hook never loads the daemon's code through this module.
 */
export type * from './hooks/types';
export type { Address, DsnParams, QueueId, QueueState, Reply } from './model/types';
export type { HookOutcome } from './hooks/runtime';
