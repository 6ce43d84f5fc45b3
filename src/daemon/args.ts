/** Command line of halyard-smtpd (the shared daemon command line plus Halon's `-f`). */
import { parseProgramArgs, type ProgramArgs } from '../util/args';

export const USAGE = `usage: halyard-smtpd [-c smtpd.yaml] [--test-config] [-f]
  -c, --config FILE   startup configuration (default /etc/halyard/smtpd.yaml)
  --test-config       check every configuration file, hook and certificate; exit 0 if valid, 1 if not
  -f, --foreground    accepted for Halon compatibility (halyard-smtpd always stays in the foreground)
  -h, --help          this text
`;

export type Args = ProgramArgs;

export function parseArgs(argv: string[]): Args | { error: string } {
  return parseProgramArgs(argv, '/etc/halyard/smtpd.yaml', ['-f', '--foreground']);
}
