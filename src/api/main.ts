/**
 * halyard-api's entry point: `halyard-api [-c api.yaml] [--test-config]` (docs/api.md).
 *
 * Inputs: argv; the config file (default /etc/halyard/api.yaml).
 * Outputs: exit code. With `--test-config`: every config error on stderr as
 * `file: key.path: reason`, exit 0 when valid, 1 when not. Otherwise binds every listener,
 * logs `listening` (with the bound ports, useful with port 0) as JSON on stdout, and runs
 * until SIGTERM or SIGINT, then stops accepting and finishes open requests (bounded).
 * Errors: usage errors exit 2; an invalid config or a listener that cannot bind exit 1.
 */
import { loadApiConfig, testApiConfig } from '../config/api';
import { ConfigInvalidError } from '../config/types';
import { parseProgramArgs, type ProgramArgs } from '../util/args';
import { createLogger } from '../util/log';
import { ApiServer } from './server';

export const USAGE = `usage: halyard-api [-c api.yaml] [--test-config]
  -c, --config FILE   configuration (default /etc/halyard/api.yaml)
  --test-config       check the configuration; exit 0 if valid, 1 if not
  -h, --help          this text
`;

export function parseApiArgs(argv: string[]): ProgramArgs | { error: string } {
  return parseProgramArgs(argv, '/etc/halyard/api.yaml');
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (s: NodeJS.Signals) => resolve(s);
    process.once('SIGTERM', on);
    process.once('SIGINT', on);
  });
}

export async function main(argv: string[]): Promise<number> {
  const args = parseApiArgs(argv);
  if ('error' in args) {
    process.stderr.write(`halyard-api: ${args.error}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.testConfig) {
    const errors = testApiConfig(args.config);
    for (const e of errors) process.stderr.write(`${e.file}: ${e.path || '(file)'}: ${e.reason}\n`);
    if (errors.length === 0) process.stdout.write(`${args.config}: valid\n`);
    return errors.length === 0 ? 0 : 1;
  }
  let config;
  try {
    config = loadApiConfig(args.config);
  } catch (err) {
    if (!(err instanceof ConfigInvalidError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 1;
  }
  const log = createLogger({ name: 'halyard-api' });
  if (config.secret === undefined) log.warn('authentication.secret is not set: anyone who reaches a listener can run every command');
  const server = new ApiServer(config, log);
  try {
    const bound = await server.start();
    log.info({ listeners: bound.map((b) => ({ address: b.address, port: b.port })) }, 'listening');
  } catch (err) {
    process.stderr.write(`halyard-api: cannot listen: ${(err as Error).message}\n`);
    await server.stop();
    return 1;
  }
  const signal = await waitForSignal();
  log.info({ signal }, 'stopping');
  await server.stop();
  log.flush();
  return 0;
}
