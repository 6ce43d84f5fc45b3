/**
 * mail.signDKIM: signatures made here verify with an independent verifier (mailauth) for
 * rsa-sha256 and ed25519-sha256 and every canonicalization; edits after signing break them;
 * bad keys, algorithm mismatches and the options the signing library lacks are refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { dkimVerify } from 'mailauth/lib/dkim/verify';
import { EodMail } from '../../src/hooks/mail';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const RSA_PEM = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const ED_PEM = ed.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

function txtRecord(pub: KeyObject): string {
  const der = pub.export({ type: 'spki', format: 'der' });
  // RFC 8463 §4.2: an Ed25519 p= is the bare 32-byte key; RSA's is the SubjectPublicKeyInfo.
  return pub.asymmetricKeyType === 'ed25519'
    ? `v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString('base64')}`
    : `v=DKIM1; k=rsa; p=${der.toString('base64')}`;
}

/** Loopback DNS: only the two selectors below exist. */
const ZONE: Record<string, string> = {
  'rsa1._domainkey.example.com': txtRecord(rsa.publicKey),
  'ed1._domainkey.example.com': txtRecord(ed.publicKey),
};
async function resolver(name: string, type: string): Promise<string[][]> {
  const rr = type === 'TXT' ? ZONE[name.toLowerCase()] : undefined;
  if (!rr) throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  return [[rr]];
}

async function verify(message: Buffer): Promise<string[]> {
  const res = await dkimVerify(message, { resolver: resolver as never });
  return res.results.map((r) => (r.status.result === 'pass' ? 'pass' : `${r.status.result}: ${String(r.status.comment)}`));
}

const MSG = [
  'Received: from client.example ([192.0.2.1])',
  '\tby mx.example.com; Mon, 1 Jan 2024 00:00:00 +0000',
  'From: Alice <alice@example.com>',
  'To: Bob <bob@example.net>',
  'Subject:  A   subject with   odd   spacing  ',
  '  and a fold',
  'Date: Mon, 1 Jan 2024 00:00:00 +0000',
  'Message-ID: <1@example.com>',
  'X-Unsigned: whatever',
  '',
  'Hello Bob,  ',
  'trailing  spaces\tand tabs\t',
  '',
  '',
  '',
].join('\r\n');

function mail(raw: string | Buffer = MSG, keys: Record<string, string> = {}): EodMail {
  return new EodMail(Buffer.isBuffer(raw) ? raw : Buffer.from(raw), {
    onQueue: () => ({ transaction: 't', queue: 1 }),
    resolveKey: (id) => keys[id],
  });
}

function signatureField(m: EodMail): string {
  const s = m.toString();
  assert.ok(s.startsWith('DKIM-Signature: '), 'the signature is the first field');
  return s.slice(0, s.search(/\r\n(?![ \t])/));
}

test('rsa-sha256 and ed25519-sha256 signatures verify, with every canonicalization', async () => {
  const canons = ['relaxed', 'simple'] as const;
  for (const [selector, pem, alg] of [['rsa1', RSA_PEM, 'rsa-sha256'], ['ed1', ED_PEM, 'ed25519-sha256']] as const) {
    for (const h of canons) {
      for (const b of canons) {
        const m = mail();
        await m.signDKIM(selector, 'example.com', pem, { canonicalization_header: h, canonicalization_body: b });
        const field = signatureField(m);
        assert.match(field, new RegExp(`a=${alg};`));
        assert.match(field, new RegExp(`c=${h}/${b};`));
        assert.deepEqual(await verify(m.toBuffer()), ['pass'], `${alg} ${h}/${b}`);
      }
    }
  }
});

test('the algorithm is inferred from the key; the default field list signs the present fields', async () => {
  const m = mail();
  await m.signDKIM('ed1', 'example.com', ED_PEM);
  const field = signatureField(m);
  assert.match(field, /a=ed25519-sha256;/);
  assert.match(field, /d=example\.com;/);
  assert.match(field, /s=ed1;/);
  assert.ok(field.split('\r\n').every((l) => l.length <= 998), field);
  const h = /h=([^;]+);/.exec(field.replace(/\r\n\s/g, ''))![1].split(':').map((x) => x.trim().toLowerCase()).sort();
  assert.deepEqual(h, ['date', 'from', 'message-id', 'subject', 'to'], 'present fields of the default list only');
});

test('editing a signed header or the body afterwards breaks the signature', async () => {
  for (const [selector, pem] of [['rsa1', RSA_PEM], ['ed1', ED_PEM]] as const) {
    const m = mail();
    await m.signDKIM(selector, 'example.com', pem);
    const signed = m.toBuffer();
    m.setHeader('Subject', 'changed');
    assert.deepEqual(await verify(m.toBuffer()), ['fail: bad signature']);
    const n = mail(signed);
    n.setBody('other text\r\n');
    assert.deepEqual(await verify(n.toBuffer()), ['neutral: body hash did not verify']);
    const o = mail(signed);
    o.addHeader('X-After', 'unsigned fields may be added', { position: 'bottom' });
    assert.deepEqual(await verify(o.toBuffer()), ['pass'], 'fields not in h= do not matter');
  }
});

test('oversign_headers and identity, which the signing library lacks, are refused and change nothing', async () => {
  const m = mail();
  const before = m.toBuffer();
  await assert.rejects(m.signDKIM('rsa1', 'example.com', RSA_PEM, { oversign_headers: ['Subject'] } as never), /oversign_headers is not supported/);
  await assert.rejects(m.signDKIM('rsa1', 'example.com', RSA_PEM, { identity: 'alice@example.com' } as never), /identity is not supported/);
  assert.equal(m.toBuffer(), before);
});

test('headers and expiration options; From is always signed', async () => {
  const m = mail();
  await m.signDKIM('rsa1', 'example.com', RSA_PEM, { headers: ['Subject', 'X-Unsigned'], expiration: 3600 });
  const field = signatureField(m).replace(/\r\n\s/g, '');
  const h = /h=([^;]+);/.exec(field)![1].split(':').map((x) => x.trim().toLowerCase()).sort();
  assert.deepEqual(h, ['from', 'subject', 'x-unsigned'], 'From is always signed');
  const t = Number(/t=(\d+);/.exec(field)?.[1]);
  const x = Number(/x=(\d+);/.exec(field)?.[1]);
  assert.equal(x - t, 3600);
  assert.deepEqual(await verify(m.toBuffer()), ['pass']);
});

test('a pki id is resolved to its key; unknown ids, bad keys and mismatches are refused', async () => {
  const m = mail(MSG, { 'dkim-ed': ED_PEM });
  await m.signDKIM('ed1', 'example.com', 'dkim-ed');
  assert.deepEqual(await verify(m.toBuffer()), ['pass']);
  const before = mail().toBuffer();
  const n = mail(before);
  await assert.rejects(n.signDKIM('ed1', 'example.com', 'nope'), /no private key with pki id "nope"/);
  await assert.rejects(n.signDKIM('ed1', 'example.com', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'), /invalid private key/);
  await assert.rejects(n.signDKIM('ed1', 'example.com', ED_PEM, { algorithm: 'rsa-sha256' }), /does not match the ed25519 key/);
  await assert.rejects(n.signDKIM('rsa1', 'example.com', RSA_PEM, { algorithm: 'ed25519-sha256' }), /does not match the rsa key/);
  await assert.rejects(n.signDKIM('bad selector', 'example.com', RSA_PEM), /invalid selector/);
  await assert.rejects(n.signDKIM('rsa1', 'example.com', RSA_PEM, { canonicalization_body: 'loose' as never }), /canonicalization_body/);
  await assert.rejects(n.signDKIM('rsa1', 'example.com', RSA_PEM, { headers: 'From' as never }), /headers must be an array/);
  assert.equal(n.toBuffer(), before, 'a refused signing leaves the message untouched');
});

test('signing works for empty bodies, header-only messages and UTF-8 header values', async () => {
  const bodies = [
    'From: a@example.com\r\nSubject: x\r\n\r\n',
    'From: a@example.com\r\nSubject: x\r\n',
    'From: =?utf-8?q?Zo=C3=AB?= <zoe@example.com>\r\nSubject: Grüße ✉\r\n\r\nbody\r\n',
  ];
  for (const raw of bodies) {
    for (const c of ['relaxed', 'simple'] as const) {
      const m = mail(raw);
      await m.signDKIM('ed1', 'example.com', ED_PEM, { canonicalization_body: c, canonicalization_header: c });
      assert.deepEqual(await verify(m.toBuffer()), ['pass'], `${c}: ${JSON.stringify(raw)}`);
    }
  }
});

test('two signatures (rsa and ed25519) on one message both verify', async () => {
  const m = mail();
  await m.signDKIM('ed1', 'example.com', ED_PEM);
  await m.signDKIM('rsa1', 'example.com', RSA_PEM);
  assert.deepEqual((await verify(m.toBuffer())).sort(), ['pass', 'pass']);
});
