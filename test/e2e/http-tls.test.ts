/**
 * The HTTP listeners over TLS: `monitor.type: https` and a submission server of `type: https`,
 * both with a pki certificate, reached with node's https client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import https from 'node:https';
import path from 'node:path';
import { monitorPort, startDaemon, tempDir, writeConfig } from './harness';

function request(port: number, pathname: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: pathname, method: opts.method ?? 'GET', headers: opts.headers, rejectUnauthorized: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

test('https: monitor and submission speak TLS with the pki certificate', async (t) => {
  const dir = tempDir();
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=mx.test.example', '-days', '2', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  const smtpd = `version: "6.8"
servers:
  - id: default
    listeners:
      - { port: 0, address: 127.0.0.1 }
  - id: api
    type: https
    listeners:
      - { port: 0, address: 127.0.0.1 }
environment:
  appconf: smtpd-app.yaml
  hostname: mx.test.example
  controlsocket: { path: smtpd.ctl }
spool:
  path: spool
pki:
  private:
    - id: main
      privatekey: { path: key.pem }
      certificate: { path: cert.pem }
monitor:
  type: https
  listener: { port: 0, address: 127.0.0.1 }
`;
  const app = `version: "6.8"
servers:
  - id: default
    transport: mx
  - id: api
    transport: mx
    apikeys: [k]
    tls:
      certs:
        - cert: main
transportgroups:
  - id: default
    transports:
      - id: mx
`;
  const d = await startDaemon(writeConfig({ dir, smtpd, app }));
  t.after(() => d.stop());
  assert.equal((await request(monitorPort(d), '/ready')).status, 200);
  const boundary = 'zz';
  const body = `--${boundary}\r\nContent-Disposition: form-data; name="options"\r\n\r\n{"sender":"a@example.com","recipients":["b@example.org"]}\r\n--${boundary}\r\nContent-Disposition: form-data; name="rfc822"\r\n\r\nSubject: tls\n\nhi\n\r\n--${boundary}--\r\n`;
  const r = await request(d.ports('api')[0], '/v1/submission', { method: 'POST', headers: { 'X-API-Key': 'k', 'Content-Type': `multipart/form-data; boundary=${boundary}` }, body });
  assert.equal(r.status, 200, r.text);
  assert.equal(JSON.parse(r.text).result.code, 250);
});
