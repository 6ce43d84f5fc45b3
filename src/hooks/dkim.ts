/**
 * DKIM signing (RFC 6376) with rsa-sha256 or ed25519-sha256 (RFC 8463), for `mail.signDKIM`,
 * done by mailauth's signer (the well-kept DKIM library of the Node mail ecosystem).
 *
 * Input: the message as it would be queued now, a PEM private key and the signing options.
 * Output: the DKIM-Signature field text to put at the top of the header (no final CRLF).
 * Errors: `DkimError` for a bad key, an algorithm that does not fit the key, bad options, or a
 * signing failure reported by the library.
 *
 * mailauth signs every present occurrence of each listed field; it offers neither `i=` nor
 * oversigning, so Halon's `identity` and `oversign_headers` options are refused with a clear
 * error rather than silently ignored (docs/decisions.md).
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { domainToASCII } from 'node:url';
import { dkimSign as mailauthSign } from 'mailauth/lib/dkim/sign';
import type { DkimOptions } from './types';

export class DkimError extends Error {
  override name = 'DkimError';
}

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';
type Canon = 'relaxed' | 'simple';

/** RFC 6376 §5.4.1 recommended fields, plus List-Unsubscribe-Post (RFC 8058 §4 requires it). */
export const DEFAULT_SIGNED_HEADERS: readonly string[] = [
  'From', 'Reply-To', 'Subject', 'Date', 'To', 'Cc', 'Resent-Date', 'Resent-From', 'Resent-To',
  'Resent-Cc', 'In-Reply-To', 'References', 'List-Id', 'List-Help', 'List-Unsubscribe',
  'List-Unsubscribe-Post', 'List-Subscribe', 'List-Post', 'List-Owner', 'List-Archive',
  'Message-ID', 'MIME-Version', 'Content-Type', 'Content-Transfer-Encoding', 'Sender',
];

const KNOWN_OPTIONS = new Set(['algorithm', 'canonicalization_header', 'canonicalization_body', 'headers', 'expiration']);

/** Parse a PEM private key and check it against the requested algorithm. */
export function dkimKey(pem: string, algorithm: DkimAlgorithm | undefined): { key: KeyObject; algorithm: DkimAlgorithm } {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new DkimError('invalid private key (expected a PEM RSA or Ed25519 private key)');
  }
  const inferred: DkimAlgorithm | undefined =
    key.asymmetricKeyType === 'rsa' ? 'rsa-sha256' : key.asymmetricKeyType === 'ed25519' ? 'ed25519-sha256' : undefined;
  if (!inferred) throw new DkimError(`unsupported key type ${key.asymmetricKeyType ?? 'unknown'} (use RSA or Ed25519)`);
  if (algorithm !== undefined && algorithm !== inferred) {
    throw new DkimError(`algorithm ${String(algorithm)} does not match the ${key.asymmetricKeyType} key`);
  }
  return { key, algorithm: inferred };
}

function canon(v: unknown, name: string): Canon {
  if (v === undefined) return 'relaxed';
  if (v === 'relaxed' || v === 'simple') return v;
  throw new DkimError(`${name} must be "relaxed" or "simple"`);
}

function checkOptions(options: DkimOptions): void {
  for (const k of Object.keys(options)) {
    if (k === 'identity' || k === 'oversign_headers') throw new DkimError(`signDKIM(): option ${k} is not supported`);
    if (!KNOWN_OPTIONS.has(k)) throw new DkimError(`signDKIM(): unknown option ${k}`);
  }
  if (options.headers !== undefined && (!Array.isArray(options.headers) || options.headers.some((h) => typeof h !== 'string' || !/^[\x21-\x39\x3b-\x7e]+$/.test(h)))) {
    throw new DkimError('signDKIM(): headers must be an array of header field names');
  }
  if (options.expiration !== undefined && (!Number.isInteger(options.expiration) || options.expiration <= 0)) {
    throw new DkimError('signDKIM(): expiration must be a positive number of seconds');
  }
}

function checkName(v: string, what: string): string {
  const ascii = domainToASCII(v);
  if (!ascii || !/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/i.test(ascii)) throw new DkimError(`signDKIM(): invalid ${what} "${v}"`);
  return ascii;
}

/** Sign `message` and return the DKIM-Signature field (folded, without the final CRLF). */
export async function dkimSign(message: Buffer, selector: string, domain: string, key: KeyObject, algorithm: DkimAlgorithm, options: DkimOptions): Promise<string> {
  checkOptions(options);
  const hc = canon(options.canonicalization_header, 'canonicalization_header');
  const bc = canon(options.canonicalization_body, 'canonicalization_body');
  const signTime = new Date();
  // A message without the blank line has an empty body; give the signer the canonical form
  // (the renderer writes the separator once the signature field is added).
  const input = message.includes('\r\n\r\n') ? message : Buffer.concat([message, Buffer.from('\r\n')]);
  const names = options.headers ?? [...DEFAULT_SIGNED_HEADERS];
  // RFC 6376 §5.4: the From field MUST be signed.
  if (!names.some((n) => n.toLowerCase() === 'from')) names.unshift('From');
  const result = await mailauthSign(input, {
    canonicalization: `${hc}/${bc}`,
    algorithm,
    signTime,
    expires: options.expiration !== undefined ? new Date(signTime.getTime() + options.expiration * 1000) : undefined,
    headerList: names.join(':'),
    signatureData: [{ signingDomain: checkName(domain, 'domain'), selector: checkName(selector, 'selector'), privateKey: key.export({ format: 'pem', type: 'pkcs8' }) as string, algorithm }],
  } as unknown as Parameters<typeof mailauthSign>[1]);
  if (result.errors?.length) throw new DkimError(`signDKIM(): ${String((result.errors[0] as { error?: unknown }).error ?? result.errors[0])}`);
  const text = result.signatures.replace(/\r\n$/, '');
  if (!/^DKIM-Signature:/i.test(text)) throw new DkimError('signDKIM(): the signer produced no signature');
  return text;
}
