/**
 * The SMTP server's own replies: one catalogue, so that every code a peer can see is listed in
 * one place. Replies decided by hooks come from
 * src/hooks/replies.ts; replies for malformed commands from codec.ts (CODEC_ERRORS).
 *
 * Texts are fixed and bland: no peer input, no error messages, no software versions.
 * Enhanced codes: RFC 3463 (classes and subjects), RFC 2034 (when they are sent), RFC 5321
 * §4.2 (basic codes), RFC 3030 (BDAT), RFC 3207 (STARTTLS), RFC 4954 (AUTH), RFC 6531 (UTF-8).
 */
import type { Enhanced } from './codec';

export interface SmtpReply {
  code: number;
  enhanced: Enhanced | null;
  lines: string[];
}

function r(code: number, enhanced: Enhanced | null, text: string): SmtpReply {
  return Object.freeze({ code, enhanced, lines: Object.freeze([text]) as string[] });
}

export const REPLIES = {
  ok: r(250, [2, 0, 0], 'OK'),
  resetOk: r(250, [2, 0, 0], 'Reset OK'),
  senderOk: r(250, [2, 1, 0], 'Sender OK'),
  recipientOk: r(250, [2, 1, 5], 'Recipient OK'),
  bye: r(221, [2, 0, 0], 'Bye'),
  help: r(214, [2, 0, 0], 'See RFC 5321'),
  // RFC 5321 §3.5.3: 252 when the server will not verify but will attempt delivery (no disclosure).
  vrfy: r(252, [2, 5, 0], 'Cannot VRFY user, but will accept message and attempt delivery'),
  // 354 and 334 carry no enhanced code, as Postfix and Exim do (the 334 text must be base64 only).
  startData: r(354, null, 'End data with <CR><LF>.<CR><LF>'),
  startTls: r(220, [2, 0, 0], 'Ready to start TLS'),
  authOk: r(235, [2, 7, 0], 'Authentication successful'),

  // Sequence and protocol errors (counted towards limits.errors)
  needHelo: r(503, [5, 5, 1], 'Send HELO/EHLO first'),
  needEhlo: r(503, [5, 5, 1], 'Send EHLO first'),
  nestedMail: r(503, [5, 5, 1], 'Nested MAIL command'),
  needMail: r(503, [5, 5, 1], 'Need MAIL command'),
  needRcpt: r(554, [5, 5, 1], 'No valid recipients'),
  mixedData: r(503, [5, 5, 1], 'DATA and BDAT cannot be mixed in one transaction'),
  rcptAfterBdat: r(503, [5, 5, 1], 'RCPT not allowed after BDAT'),
  notImplemented: r(502, [5, 5, 1], 'Command not implemented'),
  tlsActive: r(503, [5, 5, 1], 'TLS already active'),
  unknownCommand: r(500, [5, 5, 2], 'Command unrecognized'),
  lineTooLong: r(500, [5, 5, 6], 'Line too long'),
  // Bare LF/CR in a command line: refused rather than guessed at (SMTP smuggling hygiene).
  bareEolCommand: r(500, [5, 5, 2], 'Syntax error: bare LF or CR'),
  unsupportedParam: r(555, [5, 5, 4], 'Unsupported parameter'),
  needUtf8: r(553, [5, 6, 7], 'Non-ASCII address requires SMTPUTF8'),

  // AUTH (RFC 4954)
  authRequiresTls: r(530, [5, 7, 0], 'Must issue a STARTTLS command first'),
  authAlready: r(503, [5, 5, 1], 'Already authenticated'),
  authInTransaction: r(503, [5, 5, 1], 'AUTH not permitted during a mail transaction'),
  authMechanism: r(504, [5, 5, 4], 'Unrecognized authentication type'),
  authCancelled: r(501, [5, 7, 0], 'Authentication cancelled'),
  authDecode: r(501, [5, 5, 2], 'Cannot decode response'),

  // Limits and resources
  tooBigAtMail: r(552, [5, 3, 4], 'Message size exceeds fixed maximum message size'),
  tooBig: r(552, [5, 3, 4], 'Message size exceeds fixed maximum message size'),
  noSpace: r(452, [4, 3, 1], 'Insufficient system storage'),
  commitFailed: r(451, [4, 3, 0], 'Local error in processing'),
  tooManyRecipients: r(452, [4, 5, 3], 'Too many recipients'),
  tooManyMessages: r(421, [4, 7, 0], 'Too many messages in this connection'),
  tooManyErrors: r(421, [4, 7, 0], 'Too many errors'),
  tooManyConnections: r(421, [4, 7, 0], 'Too many connections'),
  tooManyHops: r(554, [5, 4, 6], 'Too many hops (mail loop)'),
  // Bare LF/CR in message content: refused, never queued (SMTP smuggling, CVE-2023-51764).
  bareEolData: r(550, [5, 6, 0], 'Message contains bare LF or CR; lines must end with CRLF'),
  idleTimeout: r(421, [4, 4, 2], 'Timeout, closing connection'),
  dataTimeout: r(421, [4, 4, 2], 'Timeout waiting for data, closing connection'),
  shuttingDown: r(421, [4, 3, 2], 'Service shutting down'),
  proxyRequired: r(421, [4, 7, 0], 'Protocol error'),
  internalError: r(421, [4, 3, 0], 'Local error, closing connection'),
} as const;

/** A reply built at run time (hook outcomes, EHLO, greeting, queued-as). */
export function reply(code: number, enhanced: Enhanced | null, lines: string[]): SmtpReply {
  return { code, enhanced, lines };
}
