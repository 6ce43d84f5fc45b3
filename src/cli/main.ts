/**
 * halyardctl: Halyard's command line, a client of the daemon's control socket (docs/cli.md).
 *
 * `halyardctl [-c smtpd.yaml | --socket PATH | --port N [--address A] [--tls…]] [--json]
 *  [--json-request] <command…> [options]` (where to connect: socket.ts)
 * Flow: global options → subcommand (subcommands.ts) → its options and arguments → request →
 * with `--json-request` print the request as JSON and stop (nothing is sent, so a bounce or a
 * delete can be looked at safely) → connect, send, read the reply → print it (human text, or
 * the proto3 JSON mapping with `--json`).
 * Exit codes: 0 success; 1 the daemon refused the command (its text on stderr) or found
 * nothing; 2 usage error (bad command, option or argument, unreadable config file); 3 the
 * daemon could not be reached or the connection failed.
 */
import { COMMANDS, type CommandInfo } from '../control/commands';
import { ControlClient, ControlConnectError, type ControlTarget } from '../control/client';
import { decodeMessage, encodeMessage, normalise } from '../control/schema';
import { ConditionError } from './conditions';
import { leadingOptions, optionHelp, parseOptions, single, UsageError, type OptionSpec, type ParsedArgs } from './options';
import { resolveTarget } from './socket';
import { findSubcommand, SUBCOMMANDS, subcommandsUnder, type Output, type Subcommand } from './subcommands';

export const EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3 } as const;

const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  { name: 'config', short: 'c', value: 'FILE', help: 'smtpd.yaml whose environment.controlsocket.path to use (default /etc/halyard/smtpd.yaml)' },
  { name: 'socket', value: 'PATH', help: 'the control socket itself' },
  { name: 'address', value: 'ADDRESS', help: 'connect over TCP to ADDRESS (default controlsocket.address, else 127.0.0.1)' },
  { name: 'port', value: 'PORT', help: 'connect over TCP to PORT (default controlsocket.port when the config sets no path)' },
  { name: 'tls', help: 'use TLS on TCP (on by itself when the config has controlsocket.tls)' },
  { name: 'tls-certificate', value: 'FILE', help: 'PEM client certificate for mutual TLS (default controlsocket.tls.client.certificate)' },
  { name: 'tls-privatekey', value: 'FILE', help: 'PEM private key of the client certificate (default controlsocket.tls.client.privatekey)' },
  { name: 'tls-verifyname', value: 'NAME', help: "name the daemon's certificate must carry (default controlsocket.tls.client.verifyname, else the address)" },
  { name: 'tls-noverify', help: "do not verify the daemon's certificate" },
  { name: 'json', help: 'print the reply as JSON (proto3 JSON mapping)' },
  { name: 'json-request', help: 'print the request as JSON and exit without sending it' },
  { name: 'timeout', value: 'SECONDS', help: 'give up waiting for the daemon after SECONDS (default 120)' },
  { name: 'help', short: 'h', help: 'show help' },
];

const DEFAULT_TIMEOUT_S = 120;

function usage(): string {
  const width = Math.max(...SUBCOMMANDS.map((s) => [...s.words, ...s.args].join(' ').length));
  const lines = SUBCOMMANDS.map((s) => `  ${[...s.words, ...s.args].join(' ').padEnd(width)}  ${s.summary}`);
  return `usage: halyardctl [global options] <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nglobal options:\n${optionHelp(GLOBAL_OPTIONS)}\n\n"halyardctl <command> --help" describes one command.\n`;
}

function subcommandHelp(sub: Subcommand): string {
  const opts = sub.options.length ? `\noptions:\n${optionHelp(sub.options)}\n` : '';
  return `usage: halyardctl [global options] ${[...sub.words, ...sub.args].join(' ')}${sub.options.length ? ' [options]' : ''}\n\n${sub.summary}\n${opts}\nglobal options:\n${optionHelp(GLOBAL_OPTIONS)}\n`;
}

function unknownCommand(words: string[]): UsageError {
  const near = subcommandsUnder(words.slice(0, 1));
  const hint = near.length ? `; did you mean: ${near.map((s) => s.words.join(' ')).join(', ')}` : '';
  return new UsageError(`unknown command "${words.join(' ')}"${hint} (halyardctl --help lists them)`);
}

interface Invocation {
  sub: Subcommand;
  args: ParsedArgs;
}

function parse(argv: string[]): Invocation | 'help' {
  const { args: global, rest } = leadingOptions(argv, GLOBAL_OPTIONS);
  if (rest.length === 0) {
    if (global.flags.has('help')) return 'help';
    throw new UsageError('no command given (halyardctl --help lists them)');
  }
  const found = findSubcommand(rest);
  if (!found) throw unknownCommand(rest);
  const args = parseOptions(found.rest, [...found.sub.options, ...GLOBAL_OPTIONS], global);
  return { sub: found.sub, args };
}

function timeoutMs(args: ParsedArgs): number {
  const v = single(args, 'timeout');
  if (v === undefined) return DEFAULT_TIMEOUT_S * 1000;
  const s = Number(v);
  if (!Number.isFinite(s) || s <= 0) throw new UsageError('--timeout takes a number of seconds above 0');
  return s * 1000;
}

function target(args: ParsedArgs): ControlTarget {
  return resolveTarget({
    socket: single(args, 'socket'),
    config: single(args, 'config'),
    address: single(args, 'address'),
    port: single(args, 'port'),
    tls: args.flags.has('tls'),
    tlsCertificate: single(args, 'tls-certificate'),
    tlsPrivatekey: single(args, 'tls-privatekey'),
    tlsVerifyname: single(args, 'tls-verifyname'),
    tlsNoverify: args.flags.has('tls-noverify'),
  });
}

function printJson(io: Output, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** The reply as JSON: the response message, base64 for raw payloads, {} for an empty reply. */
function replyJson(info: CommandInfo, payload: Buffer): unknown {
  if (info.raw) return { data: payload.toString('base64') };
  return info.response ? decodeMessage(info.response, payload, 'json') : {};
}

async function send(inv: Invocation, info: CommandInfo, body: Buffer | undefined, io: Output): Promise<number> {
  const client = await ControlClient.connect(target(inv.args), { timeoutMs: timeoutMs(inv.args) });
  try {
    const reply = await client.request(info.letter, body);
    if (reply.status === 'E') {
      io.err(`halyardctl: ${reply.payload.toString('utf8')}\n`);
      return EXIT.refused;
    }
    if (inv.args.flags.has('json')) {
      printJson(io, replyJson(info, reply.payload));
      return EXIT.ok;
    }
    return inv.sub.render(reply.payload, inv.args, io);
  } finally {
    client.close();
  }
}

async function run(argv: string[], io: Output): Promise<number> {
  const inv = parse(argv);
  if (inv === 'help') {
    io.out(usage());
    return EXIT.ok;
  }
  if (inv.args.flags.has('help')) {
    io.out(subcommandHelp(inv.sub));
    return EXIT.ok;
  }
  const info: CommandInfo = COMMANDS[inv.sub.command];
  const request = inv.sub.request(inv.args);
  if (inv.args.flags.has('json-request')) {
    printJson(io, info.request ? normalise(info.request, request ?? {}, 'json') : {});
    return EXIT.ok;
  }
  const body = info.request ? encodeMessage(info.request, request ?? {}) : undefined;
  return send(inv, info, body, io);
}

const STD_IO: Output = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
  bytes: (b) => void process.stdout.write(b),
};

export async function main(argv: string[], io: Output = STD_IO): Promise<number> {
  try {
    return await run(argv, io);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConditionError) {
      io.err(`halyardctl: ${err.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof ControlConnectError) {
      io.err(`halyardctl: ${err.message}\n`);
      return EXIT.unreachable;
    }
    throw err;
  }
}
