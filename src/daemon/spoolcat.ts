/**
 * halyard-spoolcat: print the live queue entries of a spool as JSON lines, read-only (Halon's
 * hqfcat). Safe to run beside a running daemon: it takes no lock and writes nothing.
 *   halyard-spoolcat [-c smtpd.yaml | --spool DIR] [--body QUEUEID]
 */
import { loadStartupConfig } from '../config/load';
import { dumpSpool } from '../spool/inspect';

const USAGE = 'usage: halyard-spoolcat [-c smtpd.yaml | --spool DIR]\n';

export async function main(argv: string[]): Promise<number> {
  let dir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-c' || argv[i] === '--config') dir = loadStartupConfig(argv[++i]).spool.path;
    else if (argv[i] === '--spool') dir = argv[++i];
    else {
      process.stderr.write(USAGE);
      return 2;
    }
  }
  if (!dir) {
    process.stderr.write(USAGE);
    return 2;
  }
  const txs = await dumpSpool(dir);
  const out: string[] = [];
  for (const tx of txs) {
    for (const e of tx.entries) {
      out.push(JSON.stringify({ id: `${tx.id}:${e.queue}`, transaction: tx.meta, entry: e.meta, bodySizes: tx.bodySizes }));
    }
  }
  process.stdout.write(out.length ? out.join('\n') + '\n' : '');
  return 0;
}
