/**
 * halyard-spoolcat: read-only spool inspection, safe beside a running daemon (it takes no lock
 * and writes nothing).
 *   halyard-spoolcat [-c smtpd.yaml | --spool DIR]              live entries as JSON lines (Halon's hqfcat)
 *   halyard-spoolcat [-c smtpd.yaml | --spool DIR] --body ID    the message queued for entry ID
 *                                                               (<transaction>:<n>), as Halon's hqfeml -R
 */
import { loadStartupConfig } from '../config/load';
import { parseQueueId } from '../model/types';
import { dumpSpool, readSpoolBody } from '../spool/inspect';

const USAGE = 'usage: halyard-spoolcat [-c smtpd.yaml | --spool DIR] [--body TRANSACTION:N]\n';

interface Args {
  dir?: string;
  body?: string;
}

function parse(argv: string[]): Args | null {
  const out: Args = {};
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    if (v === undefined) return null;
    if (argv[i] === '-c' || argv[i] === '--config') out.dir = loadStartupConfig(v).spool.path;
    else if (argv[i] === '--spool') out.dir = v;
    else if (argv[i] === '--body') out.body = v;
    else return null;
    i++;
  }
  return out.dir ? out : null;
}

async function printBody(dir: string, id: string): Promise<number> {
  const qid = parseQueueId(id);
  if (!qid) {
    process.stderr.write(`halyard-spoolcat: "${id}" is not a queue id (<transaction>:<n>)\n`);
    return 2;
  }
  const tx = (await dumpSpool(dir)).find((t) => t.id === qid.transaction);
  const entry = tx?.entries.find((e) => e.queue === qid.queue);
  const body = entry ? await readSpoolBody(dir, qid.transaction, Number((entry.meta as { body?: number }).body ?? 0)) : null;
  if (!body) {
    process.stderr.write(`halyard-spoolcat: no live entry ${id}\n`);
    return 1;
  }
  process.stdout.write(body);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const args = parse(argv);
  if (!args?.dir) {
    process.stderr.write(USAGE);
    return 2;
  }
  if (args.body) return printBody(args.dir, args.body);
  const out: string[] = [];
  for (const tx of await dumpSpool(args.dir)) {
    for (const e of tx.entries) {
      out.push(JSON.stringify({ id: `${tx.id}:${e.queue}`, transaction: tx.meta, entry: e.meta, bodySizes: tx.bodySizes }));
    }
  }
  process.stdout.write(out.length ? out.join('\n') + '\n' : '');
  return 0;
}
