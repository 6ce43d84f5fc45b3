/**
 * End-of-DATA hook of the default config: queue the message for every accepted recipient on
 * the transport its RCPT TO was given (the server's `transport`, unless an rcptto hook chose
 * another), then accept. Without the queue() calls the message would be deferred and nothing
 * queued (Halon's eod contract).
 */
import type { EodHook } from 'halyard';

export default function eod({ arguments: { mail }, transaction, Accept }: EodHook): void {
  for (const r of transaction.recipients) {
    mail.queue(transaction.sender ?? '', r.address, r.transportid);
  }
  Accept();
}
