/** Command line of halyard-smtpd. Pure: argv in, options or an error out. */

export const USAGE = `usage: halyard-smtpd [-c smtpd.yaml] [--test-config] [-f]
  -c, --config FILE   startup configuration (default /etc/halyard/smtpd.yaml)
  --test-config       check every configuration file, hook and certificate; exit 0 if valid, 1 if not
  -f, --foreground    accepted for Halon compatibility (halyard-smtpd always stays in the foreground)
  -h, --help          this text
`;

export interface Args {
  config: string;
  testConfig: boolean;
  help: boolean;
}

export function parseArgs(argv: string[]): Args | { error: string } {
  const out: Args = { config: '/etc/halyard/smtpd.yaml', testConfig: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '-c':
      case '--config': {
        const v = argv[++i];
        if (!v) return { error: `${a} needs a file name` };
        out.config = v;
        break;
      }
      case '--test-config':
        out.testConfig = true;
        break;
      case '-f':
      case '--foreground':
        break;
      case '-h':
      case '--help':
        out.help = true;
        break;
      default:
        if (a.startsWith('--config=')) out.config = a.slice(9);
        else return { error: `unknown option ${a}` };
    }
  }
  return out;
}
