/**
 * Transaction and connection ids: UUID v4 (random, default) or v1 (time-based) as chosen by
 * `environment.uuid.version` (halon-core.md §2.2). Always lower-case, 36 characters.
 */
import { randomUUID } from 'node:crypto';
import { v1 as uuidv1 } from 'uuid';

export type UuidVersion = 1 | 4;

export function makeIdGenerator(version: UuidVersion): () => string {
  return version === 1 ? () => uuidv1() : () => randomUUID();
}
