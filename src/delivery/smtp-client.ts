/**
 * Halyard's outbound SMTP/LMTP client: the public entry point for the delivery stage.
 *
 * Contract (details in each module):
 * - `deliver(hops, tx, opts)` (client-deliver.ts): one delivery attempt of one transaction over
 *   the next hops from nexthop.ts — next address / next MX on connection-level failures, stop at
 *   the first hop that runs a transaction; returns per-recipient outcomes, Halon's
 *   `attempt.connection` facts and the hop used, or the failure (`attempt.error`/`attempt.result`).
 * - `SmtpConnection` (client-connection.ts): one session — banner, EHLO/HELO/LHLO, STARTTLS per
 *   `tls.mode`, PIPELINING, SIZE/8BITMIME/SMTPUTF8/DSN, DATA with back-pressure, LMTP
 *   per-recipient replies, RSET/QUIT, per-state time-outs with Halon's state names.
 * - `ConnectionPool` (client-pool.ts): idle sessions for reuse, Halon's pooling counters.
 * - `ReplyParser` (client-reply.ts): bounded reply parsing with enhanced status codes.
 * Written on node:net/node:tls only. Remote behaviour never throws; it is a value.
 */
export { deliver, type DeliverOptions, type DeliverResult, type HopRef, type HopFailure, type SourceAddress } from './client-deliver';
export { SmtpConnection, DEFAULT_TIMEOUTS, poolKey, type PoolKeyParts } from './client-connection';
export { ConnectionPool, DEFAULT_POOL_POLICY, type PoolOptions, type PoolPolicy, type PoolCounters } from './client-pool';
export { ReplyParser, parseReply, enhancedOf, formatReply, type FeedResult, type ParseError } from './client-reply';
export { parseCapabilities, dotStuff, xtext, utf8AddrXtext, encodeOrcpt, notifyValue, mailCommand, rcptCommand } from './client-codec';
export * from './client-types';
