/**
 * The one door into the queue. Every receiver (SMTP, HTTP submission) hands an accepted
 * transaction to `commit`; it resolves only once the transaction and all its queue entries are
 * durable, and only then may the receiver acknowledge (250 / HTTP 200).
 *
 * Errors: rejects with an error whose `code` is 'SPOOL_FULL' when `spool.minfree` is reached
 * (answer 452 4.3.1), and with any other error for I/O failures (answer 451 4.3.0).
 */
import type { AcceptedTransaction } from './types';

export interface Ingress {
  commit(tx: AcceptedTransaction): Promise<void>;
  /** False while the spool is below `spool.minfree`: new transactions get 452 4.3.1 at MAIL. */
  hasSpace(): boolean;
}
