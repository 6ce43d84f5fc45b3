/**
 * The command line shared by Halyard's daemons: `-c FILE` / `--config FILE` / `--config=FILE`,
 * `--test-config`, `-h` / `--help`, plus flags a program accepts and ignores (smtpd's `-f`).
 * Pure: argv in, options or a usage error out.
 */

export interface ProgramArgs {
  config: string;
  testConfig: boolean;
  help: boolean;
}

export function parseProgramArgs(argv: string[], defaultConfig: string, ignored: readonly string[] = []): ProgramArgs | { error: string } {
  const out: ProgramArgs = { config: defaultConfig, testConfig: false, help: false };
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
      case '-h':
      case '--help':
        out.help = true;
        break;
      default:
        if (a.startsWith('--config=')) out.config = a.slice('--config='.length);
        else if (!ignored.includes(a)) return { error: `unknown option ${a}` };
    }
  }
  return out;
}
