/**
 * SASL PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login) decoding: PURE.
 *
 * Inputs: base64 text from an AUTH command or a 334 continuation line.
 * Outputs: decoded credentials, or null when the text is not strict base64 of UTF-8
 * (the session answers 501 5.5.2). Never throws.
 */
import { isUtf8 } from 'node:buffer';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 → UTF-8 text; "=" is the RFC 4954 §4 empty initial response. */
export function decodeBase64Text(s: string): string | null {
  if (s === '=') return '';
  if (!BASE64.test(s)) return null;
  const b = Buffer.from(s, 'base64');
  return isUtf8(b) ? b.toString('utf8') : null;
}

export function encodeBase64Text(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

export interface PlainCredentials {
  /** Authorization identity; '' when the client acts as itself. */
  authzid: string;
  username: string;
  password: string;
}

/** RFC 4616 §2: message = [authzid] NUL authcid NUL passwd. */
export function decodePlain(b64: string): PlainCredentials | null {
  const text = decodeBase64Text(b64);
  if (text === null) return null;
  const parts = text.split('\0');
  if (parts.length !== 3 || parts[1] === '') return null;
  return { authzid: parts[0], username: parts[1], password: parts[2] };
}

/** The LOGIN mechanism's two challenges, base64 of "Username:" and "Password:". */
export const LOGIN_USERNAME_CHALLENGE = encodeBase64Text('Username:');
export const LOGIN_PASSWORD_CHALLENGE = encodeBase64Text('Password:');
