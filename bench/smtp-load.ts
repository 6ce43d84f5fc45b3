/**
 * The load generator's client, shared by the bench scripts: one message on one new connection
 * (EHLO, MAIL, RCPT, DATA in lock-step, then the body), resolving with the time from the end of
 * the data to the server's reply. Loopback only.
 */
import net from 'node:net';

/** A message of about `size` bytes, CRLF lines, already terminated with CRLF.CRLF. */
export function payload(size: number): Buffer {
  let s = 'From: bench@example.com\r\nTo: rcpt@example.org\r\nSubject: bench\r\n\r\n';
  while (s.length < size) s += 'x'.repeat(76) + '\r\n';
  return Buffer.from(s.slice(0, size - 2) + '\r\n.\r\n');
}

/** Send one message; resolves with the end-of-data → 250 latency in ms, rejects on any other reply. */
export function sendOne(port: number, data: Buffer, host = '127.0.0.1'): Promise<number> {
  if (!/^127\.|^::1$|^localhost$/.test(host)) return Promise.reject(new Error('loopback only'));
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    const script = ['EHLO bench.local', 'MAIL FROM:<bench@example.com>', 'RCPT TO:<rcpt@example.org>', 'DATA'];
    let step = -1;
    let buf = '';
    let t0 = 0n;
    s.setEncoding('latin1');
    s.on('error', reject);
    s.on('data', (d: string) => {
      buf += d;
      let m: RegExpExecArray | null;
      while ((m = /^(?:\d{3}-[^\n]*\n)*(\d{3})(?: [^\n]*)?\n/.exec(buf))) {
        buf = buf.slice(m[0].length);
        const code = m[1];
        if (step === script.length) {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          s.end('QUIT\r\n');
          return code === '250' ? resolve(ms) : reject(new Error(`end of data answered ${code}`));
        }
        if (code[0] !== '2' && code !== '354') return reject(new Error(`step ${step} answered ${code}`));
        step++;
        if (step < script.length) s.write(script[step] + '\r\n');
        else {
          t0 = process.hrtime.bigint();
          s.write(data);
        }
      }
    });
  });
}
