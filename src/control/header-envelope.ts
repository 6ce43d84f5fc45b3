/**
 * The envelope of a raw RFC 5322 message taken from its header fields, for `E` import of
 * `rfc822` data (QueueImportRequest carries no envelope). Pure.
 *
 * Rules (as `sendmail -t` does):
 * - recipients: every address in To, Cc and Bcc (RFC 5322 §3.6.3), in order, duplicates once;
 *   the Bcc fields are then removed from the message (the first of the Bcc methods of §3.6.3:
 *   blind recipients must not see each other);
 * - sender: the address in Return-Path (`<>` = the null sender), else the first address of
 *   Sender, else of From, else the null sender. Return-Path fields are removed: the final
 *   delivery MTA writes that field, a message in transit must not carry one (RFC 5321 §4.4).
 * Address lists are parsed for what matters here (RFC 5322 §3.4): comments and display names
 * are dropped, `<addr>` (with an obsolete route) or a bare addr-spec is taken, groups are
 * opened (`undisclosed-recipients:;` gives nothing).
 * Output: `{sender, recipients, message}`; `recipients` may be empty (the caller refuses).
 */
import { fieldValue, parseMessage, renderMessage } from '../hooks/header';

export interface HeaderEnvelope {
  sender: string;
  recipients: string[];
  message: Buffer;
}

export function envelopeFromHeaders(message: Buffer): HeaderEnvelope {
  const parsed = parseMessage(message);
  const values = (name: string) => parsed.fields.filter((f) => f.lname === name).map(fieldValue);
  const seen = new Set<string>();
  const recipients: string[] = [];
  for (const name of ['to', 'cc', 'bcc']) {
    for (const v of values(name)) {
      for (const a of addressList(v)) {
        if (seen.has(a.toLowerCase())) continue;
        seen.add(a.toLowerCase());
        recipients.push(a);
      }
    }
  }
  const returnPath = values('return-path')[0];
  const sender = returnPath !== undefined ? (addressList(returnPath)[0] ?? '') : (addressList(values('sender')[0] ?? '')[0] ?? addressList(values('from')[0] ?? '')[0] ?? '');
  const drop = parsed.fields.some((f) => f.lname === 'bcc' || f.lname === 'return-path');
  const kept = drop ? renderMessage(parsed.fields.filter((f) => f.lname !== 'bcc' && f.lname !== 'return-path'), parsed.separator, parsed.body) : message;
  return { sender, recipients, message: kept };
}

/** The addr-specs of an address list (display names, comments and group names dropped). */
export function addressList(value: string): string[] {
  const out: string[] = [];
  for (const item of splitTop(stripComments(value))) {
    const a = mailbox(item);
    if (a) out.push(a);
  }
  return out;
}

/** Remove (comments), which may nest, outside quoted strings (RFC 5322 §3.2.2). */
function stripComments(s: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && (quoted || depth > 0)) {
      if (depth === 0) out += c + (s[i + 1] ?? '');
      i++;
      continue;
    }
    if (depth === 0 && c === '"') quoted = !quoted;
    if (!quoted && c === '(') {
      depth++;
      continue;
    }
    if (!quoted && c === ')' && depth > 0) {
      depth--;
      out += ' ';
      continue;
    }
    if (depth === 0) out += c;
  }
  return out;
}

/** Split at commas outside quotes and angle brackets; a group's `name:` and `;` end items too. */
function splitTop(s: string): string[] {
  const items: string[] = [];
  let cur = '';
  let quoted = false;
  let angle = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && quoted) {
      cur += c + (s[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === '<') angle = true;
    else if (!quoted && c === '>') angle = false;
    else if (!quoted && !angle && (c === ',' || c === ';')) {
      items.push(cur);
      cur = '';
      continue;
    } else if (!quoted && !angle && c === ':') {
      cur = ''; // a group's display name
      continue;
    }
    cur += c;
  }
  items.push(cur);
  return items;
}

/** One mailbox → its addr-spec, or undefined when there is none (`<>` included). */
function mailbox(item: string): string | undefined {
  const open = item.lastIndexOf('<');
  let spec = open >= 0 ? item.slice(open + 1, item.indexOf('>', open) < 0 ? undefined : item.indexOf('>', open)) : item;
  spec = spec.trim();
  // An obsolete route (@a,@b:user@host, RFC 5322 §4.4) is not part of the address.
  const route = /^@[^:]*:/.exec(spec);
  if (route) spec = spec.slice(route[0].length);
  const at = spec.lastIndexOf('@');
  if (at <= 0 || at === spec.length - 1 || /\s/.test(spec.replace(/"[^"]*"/g, ''))) return undefined;
  return spec;
}
