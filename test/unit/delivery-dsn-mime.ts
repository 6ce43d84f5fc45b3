/**
 * Test helpers for the DSN tests: a small, strict MIME reader (no parser package is installed)
 * and fixed inputs. It reads exactly what a mail client would: the top header section, the
 * multipart/report parts split at the boundary, and the delivery-status field blocks.
 */
import type { DsnInput, DsnRecipient } from '../../src/delivery/dsn';

export interface Section {
  /** Lower-case field name → unfolded values, in order. */
  fields: Map<string, string[]>;
  /** The header section as written (folded). */
  raw: string;
  body: string;
}

/** Split header section and body at the first empty line; unfold per RFC 5322 §2.2.3. */
export function splitSection(s: string): Section {
  const end = s.indexOf('\r\n\r\n');
  const raw = end < 0 ? s : s.slice(0, end + 2);
  const body = end < 0 ? '' : s.slice(end + 4);
  return { fields: parseFields(raw), raw, body };
}

export function parseFields(raw: string): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  const unfolded = raw.replace(/\r\n(?=[ \t])/g, '');
  for (const line of unfolded.split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`not a header field: ${JSON.stringify(line)}`);
    const name = line.slice(0, colon).toLowerCase();
    fields.set(name, [...(fields.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  return fields;
}

export function field(sec: Section | Map<string, string[]>, name: string): string | undefined {
  const map = sec instanceof Map ? sec : sec.fields;
  return map.get(name.toLowerCase())?.[0];
}

export interface Report {
  top: Section;
  boundary: string;
  parts: Section[];
  /** Per-message block, then one block per recipient (part 2). */
  status: Map<string, string[]>[];
}

/** Read a multipart/report as a client would; throws when the structure is wrong. */
export function readReport(message: Buffer): Report {
  const top = splitSection(message.toString('utf8'));
  const ct = field(top, 'content-type') ?? '';
  const m = /boundary="([^"]+)"/.exec(ct);
  if (!m) throw new Error(`no boundary in ${ct}`);
  const boundary = m[1];
  const segs = top.body.split(`\r\n--${boundary}`);
  const last = segs.pop();
  if (last !== '--\r\n') throw new Error(`missing close delimiter: ${JSON.stringify(last)}`);
  const parts = segs.slice(1).map((seg) => {
    if (!seg.startsWith('\r\n')) throw new Error('delimiter line not ended by CRLF');
    return splitSection(seg.slice(2));
  });
  const status = parts[1] ? parts[1].body.split('\r\n\r\n').filter((b) => b.trim() !== '').map((b) => parseFields(b + '\r\n')) : [];
  return { top, boundary, parts, status };
}

export const NOW = new Date(Date.UTC(2025, 5, 2, 10, 0, 0));
export const ARRIVAL = new Date(Date.UTC(2025, 5, 1, 9, 30, 0));
export const HEADERS = Buffer.from(
  'Received: from client.example.net ([192.0.2.10])\r\n\tby mx1.example.com with ESMTP; Sun, 01 Jun 2025 09:30:00 +0000\r\n' +
    'From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: Quarterly figures\r\n' +
    'Message-ID: <orig-1@example.com>\r\nDate: Sun, 01 Jun 2025 09:29:58 +0000\r\n\r\n',
);
export const BODY = Buffer.from('Hi Bob,\r\n\r\nthe figures are attached.\r\n\r\nAlice\r\n');

export function failedRecipient(over: Partial<DsnRecipient> = {}): DsnRecipient {
  return {
    recipient: 'bob@example.org',
    action: 'failed',
    status: '5.1.1',
    remoteMta: 'mx.example.org',
    diagnostic: { type: 'smtp', text: '550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown' },
    lastAttempt: new Date(Date.UTC(2025, 5, 2, 9, 59, 30)),
    ...over,
  };
}

export function delayedRecipient(over: Partial<DsnRecipient> = {}): DsnRecipient {
  return {
    recipient: 'carol@example.net',
    action: 'delayed',
    status: '4.4.1',
    remoteMta: 'mx.example.net',
    diagnostic: { type: 'smtp', text: '451 4.4.1 Try again later' },
    lastAttempt: new Date(Date.UTC(2025, 5, 2, 9, 55, 0)),
    willRetryUntil: new Date(Date.UTC(2025, 5, 6, 9, 30, 0)),
    ...over,
  };
}

export function input(over: Partial<DsnInput> = {}, original: Partial<DsnInput['original']> = {}): DsnInput {
  return {
    reportingMta: 'mx1.example.com',
    now: NOW,
    idGen: () => '7d1c2b3a-0000-4000-8000-00000000d5e1',
    original: { sender: 'alice@example.com', arrivalDate: ARRIVAL, headers: HEADERS, body: BODY, ...original },
    recipients: [failedRecipient()],
    ...over,
  };
}
