/**
 * Errors of the spool besides SpoolFullError (types.ts) and SpoolLockedError (lock.ts).
 * Each carries a stable `code`; messages name the transaction/entry for the log, never a path
 * that a peer could see (the SMTP server maps any of these to a bland 451 4.3.0).
 */

export type SpoolErrorCode =
  | 'SPOOL_NOT_RECOVERED' // a write before recover() completed
  | 'SPOOL_CLOSED' // use after close()
  | 'SPOOL_DUPLICATE' // commit() of an id that is already live
  | 'SPOOL_NOT_FOUND' // update()/readBody() of an unknown transaction, entry or body
  | 'SPOOL_INVALID'; // argument that cannot be stored (bad id, queue number, non-JSON meta)

export class SpoolError extends Error {
  constructor(readonly code: SpoolErrorCode, message: string) {
    super(message);
  }
}
