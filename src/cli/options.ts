/**
 * Command-line option parsing for halyardctl. Pure.
 *
 * Inputs: argument words and the option specs that apply (global + subcommand).
 * Output: option values by name (in order), every option in the order given (condition flags
 * need it), and the positional arguments.
 * Syntax: `--name value`, `--name=value`, `-x value`, boolean `--flag`; `--` ends options.
 * An option that takes a value always takes the next word, so values may start with `>` or
 * `-` (`--age '>3600'`, `--priority -1` is refused by the value check, not here).
 * Errors: `UsageError` for an unknown option, a missing value, a value given to a flag, or a
 * non-repeatable option given twice.
 */

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OptionSpec {
  name: string;
  short?: string;
  /** Placeholder of the value (e.g. FILE); absent = a boolean flag. */
  value?: string;
  repeat?: boolean;
  help: string;
}

export interface ParsedArgs {
  values: Map<string, string[]>;
  flags: Set<string>;
  ordered: Array<{ name: string; value: string }>;
  positionals: string[];
}

export function emptyArgs(): ParsedArgs {
  return { values: new Map(), flags: new Set(), ordered: [], positionals: [] };
}

function lookup(specs: readonly OptionSpec[], word: string): { spec: OptionSpec; inline?: string } | undefined {
  if (word.startsWith('--')) {
    const eq = word.indexOf('=');
    const name = eq >= 0 ? word.slice(2, eq) : word.slice(2);
    const spec = specs.find((s) => s.name === name);
    return spec && (eq >= 0 ? { spec, inline: word.slice(eq + 1) } : { spec });
  }
  const spec = specs.find((s) => s.short !== undefined && `-${s.short}` === word);
  return spec && { spec };
}

function isOption(word: string): boolean {
  return word.length > 1 && word.startsWith('-') && !/^-\d/.test(word);
}

/** Parse `argv` completely against `specs`. */
export function parseOptions(argv: readonly string[], specs: readonly OptionSpec[], into: ParsedArgs = emptyArgs()): ParsedArgs {
  const out = into;
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--') {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!isOption(word)) {
      out.positionals.push(word);
      continue;
    }
    const hit = lookup(specs, word);
    if (!hit) throw new UsageError(`unknown option ${word.split('=')[0]}`);
    const { spec, inline } = hit;
    if (spec.value === undefined) {
      if (inline !== undefined) throw new UsageError(`--${spec.name} takes no value`);
      out.flags.add(spec.name);
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`--${spec.name} needs a value (${spec.value})`);
    const list = out.values.get(spec.name) ?? [];
    if (list.length > 0 && !spec.repeat) throw new UsageError(`--${spec.name} may be given only once`);
    list.push(value);
    out.values.set(spec.name, list);
    out.ordered.push({ name: spec.name, value });
  }
  return out;
}

/** Split off the leading options (global ones) before the first plain word. */
export function leadingOptions(argv: readonly string[], specs: readonly OptionSpec[]): { args: ParsedArgs; rest: string[] } {
  const args = emptyArgs();
  let i = 0;
  while (i < argv.length && isOption(argv[i]) && argv[i] !== '--') {
    const hit = lookup(specs, argv[i]);
    if (!hit) throw new UsageError(`unknown option ${argv[i].split('=')[0]} (command options go after the command)`);
    const take = hit.spec.value !== undefined && hit.inline === undefined ? 2 : 1;
    parseOptions(argv.slice(i, i + take), specs, args);
    i += take;
  }
  return { args, rest: argv.slice(i) };
}

export function single(args: ParsedArgs, name: string): string | undefined {
  return args.values.get(name)?.[0];
}

/** Help lines for a list of options, aligned. */
export function optionHelp(specs: readonly OptionSpec[]): string {
  const left = specs.map((s) => `${s.short ? `-${s.short}, ` : '    '}--${s.name}${s.value ? ` ${s.value}` : ''}`);
  const width = Math.max(0, ...left.map((l) => l.length));
  return specs.map((s, i) => `  ${left[i].padEnd(width)}  ${s.help}${s.repeat ? ' (repeatable)' : ''}`).join('\n');
}
