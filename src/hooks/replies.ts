/**
 * Reply codes of hook outcomes: the per-phase defaults (Halon's basic codes, halon-core.md §5.1,
 * with RFC 3463 enhanced codes chosen by Halyard), and the pure functions that turn an action's
 * `reason` and `reply_codes` into the reply a peer sees.
 *
 * Inputs: a phase, an action and the options a hook gave. Outputs: `Reply`-shaped values.
 * Errors: `HookUsageError` when a hook asks for something invalid (a 2xx code on Reject, a
 * malformed enhanced code); the runtime turns it into the phase's error outcome.
 * Invariant: the text of error and timeout replies is fixed and bland; details go to the log.
 */
import type { SmtpPhase } from '../config/types';
import type { Reason, ReplyCodes } from './types';

export type Enhanced = [number, number, number];

export interface ReplyDefault {
  code: number;
  enhanced: Enhanced;
  text: string;
}

export interface PhaseReplies {
  accept: ReplyDefault;
  reject: ReplyDefault;
  defer: ReplyDefault;
  /** Used when the hook throws, times out or misuses the API. */
  error: ReplyDefault;
  /** The outcome when the hook returns without an action. */
  implicit: 'Accept' | 'Reject' | 'Defer';
}

/** A hook misused the API; becomes the phase's error outcome. */
export class HookUsageError extends Error {
  override name = 'HookUsageError';
}

const TEMPFAIL = 'Temporary failure, try again later';

function r(code: number, enhanced: Enhanced, text: string): ReplyDefault {
  return { code, enhanced, text };
}

/**
 * Base codes are Halon's. Enhanced codes (RFC 3463): X.7.1 "delivery not authorized" for policy
 * rejects and deferrals, X.3.0 "other mail system status" for hook failures, RFC 4954 §6 codes
 * for AUTH (535 5.7.8 credentials invalid, 454 4.7.0 temporary authentication failure).
 */
export const PHASE_REPLIES: Readonly<Record<SmtpPhase, PhaseReplies>> = {
  connect: {
    accept: r(220, [2, 0, 0], ''),
    reject: r(521, [5, 7, 1], 'Connection refused'),
    defer: r(421, [4, 7, 1], 'Service temporarily unavailable, try again later'),
    error: r(421, [4, 3, 0], TEMPFAIL),
    implicit: 'Accept',
  },
  helo: {
    accept: r(250, [2, 0, 0], ''),
    reject: r(554, [5, 7, 1], 'HELO rejected'),
    defer: r(450, [4, 7, 1], 'HELO deferred, try again later'),
    error: r(450, [4, 3, 0], TEMPFAIL),
    implicit: 'Accept',
  },
  auth: {
    accept: r(235, [2, 7, 0], 'Authentication successful'),
    reject: r(535, [5, 7, 8], 'Authentication credentials invalid'),
    defer: r(454, [4, 7, 0], 'Temporary authentication failure'),
    error: r(454, [4, 7, 0], 'Temporary authentication failure'),
    implicit: 'Reject',
  },
  mailfrom: {
    accept: r(250, [2, 1, 0], 'Sender OK'),
    reject: r(554, [5, 7, 1], 'Sender rejected'),
    defer: r(450, [4, 7, 1], 'Sender deferred, try again later'),
    error: r(450, [4, 3, 0], TEMPFAIL),
    implicit: 'Accept',
  },
  rcptto: {
    accept: r(250, [2, 1, 5], 'Recipient OK'),
    reject: r(554, [5, 7, 1], 'Recipient rejected'),
    defer: r(450, [4, 7, 1], 'Recipient deferred, try again later'),
    error: r(450, [4, 3, 0], TEMPFAIL),
    implicit: 'Accept',
  },
  eod: {
    accept: r(250, [2, 0, 0], 'Message accepted'),
    reject: r(550, [5, 7, 1], 'Message rejected'),
    defer: r(421, [4, 7, 1], 'Message deferred, try again later'),
    error: r(421, [4, 3, 0], TEMPFAIL),
    implicit: 'Defer',
  },
  disconnect: {
    accept: r(221, [2, 0, 0], ''),
    reject: r(221, [2, 0, 0], ''),
    defer: r(221, [2, 0, 0], ''),
    error: r(221, [2, 0, 0], ''),
    implicit: 'Accept',
  },
};

/**
 * A reason as reply lines. A string splits at line breaks, an array gives one line per element
 * (each element split again). Control characters other than TAB become spaces, since a reply
 * line is text (RFC 5321 §4.2) and a stray CR or LF would forge another reply line.
 */
export function reasonLines(reason: Reason | undefined, fallback: string): string[] {
  if (reason === undefined || reason === null) return fallback ? [fallback] : [];
  const parts = typeof reason === 'string' ? [reason] : reason;
  if (!Array.isArray(parts) || parts.some((p) => typeof p !== 'string')) {
    throw new HookUsageError('reason must be a string or an array of strings');
  }
  const lines: string[] = [];
  for (const part of parts) for (const line of part.split(/\r?\n/)) lines.push(line.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, ' '));
  return lines;
}

/**
 * Apply `reply_codes` to a default reply. The code must be of the action's class (5xx for
 * Reject, 4xx for Defer) and an enhanced code's class must match it (RFC 3463 §2).
 */
export function applyReplyCodes(
  base: ReplyDefault,
  codes: ReplyCodes | undefined,
  klass: 4 | 5,
): { code: number; enhanced: Enhanced } {
  if (codes === undefined || codes === null) return { code: base.code, enhanced: base.enhanced };
  if (typeof codes !== 'object') throw new HookUsageError('reply_codes must be an object {code, enhanced}');
  const code = codes.code ?? base.code;
  if (!Number.isInteger(code) || Math.floor(code / 100) !== klass) {
    throw new HookUsageError(`reply_codes.code ${String(code)} is not a ${klass}xx code`);
  }
  const enhanced = codes.enhanced ?? base.enhanced;
  if (!isEnhanced(enhanced) || enhanced[0] !== klass) {
    throw new HookUsageError(`reply_codes.enhanced ${JSON.stringify(enhanced)} is not a ${klass}.x.y code`);
  }
  return { code, enhanced: [enhanced[0], enhanced[1], enhanced[2]] };
}

/** RFC 3463 §2: class "." subject "." detail, subject and detail 1–3 digits. */
function isEnhanced(e: unknown): e is Enhanced {
  return (
    Array.isArray(e) &&
    e.length === 3 &&
    e.every((n) => Number.isInteger(n) && n >= 0 && n <= 999) &&
    (e[0] === 2 || e[0] === 4 || e[0] === 5)
  );
}
