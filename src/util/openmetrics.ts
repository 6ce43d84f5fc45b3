/**
 * Metric families and their two text expositions, shared by `halyardctl process-stats
 * --openmetrics` (src/cli/stats-format.ts) and the monitor listener (src/http/monitor.ts).
 *
 * Inputs: flattened samples (a field path, labels, a value) or ready-made families.
 * Outputs:
 * - `openmetrics` (OpenMetrics 1.0.0, what a Prometheus server asks for first): `# TYPE` and
 *   `# HELP` per family; a counter family `x` has its sample named `x_total` (OpenMetrics
 *   §"Counter": the Total sample MUST end in `_total`); the text ends with `# EOF`;
 * - `prometheus` (text format 0.0.4, what `promtool check metrics` lints): a counter family
 *   is named `x_total` in its TYPE/HELP lines and its samples; no `# EOF`.
 * Invariants: one TYPE line per family, families in first-seen order, label values escaped
 * (`\\`, `"`, newline), values are decimal numbers, `NaN` or `±Inf`; strings never become
 * metrics. Pure.
 */

export type MetricType = 'counter' | 'gauge';
export type ExpositionFormat = 'openmetrics' | 'prometheus';

export interface MetricSample {
  labels: ReadonlyArray<readonly [string, string]>;
  value: string;
}

export interface MetricFamily {
  /** Family name; for a counter without the `_total` suffix. */
  name: string;
  type: MetricType;
  help?: string;
  samples: MetricSample[];
}

/** The part of a flattened message sample that metrics need (stats-format.ts `Sample`). */
export interface PathSample {
  path: readonly string[];
  labels: ReadonlyArray<readonly [string, string]>;
  value: string | number | boolean;
  numeric: boolean;
}

export interface FamilyOptions {
  prefix?: string;
  /** Type of a family by its field path; default every family is a gauge. */
  typeOf?: (path: readonly string[]) => MetricType;
  /** HELP text of a family by its field path; default none. */
  helpOf?: (path: readonly string[]) => string;
}

export const CONTENT_TYPES: Record<ExpositionFormat, string> = {
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
  prometheus: 'text/plain; version=0.0.4; charset=utf-8',
};

export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A sample value as exposition text; undefined when it is not a number. */
export function metricValue(v: string | number | boolean): string | undefined {
  if (typeof v === 'boolean') return v ? '1' : '0';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN';
  return /^-?\d+(?:\.\d+)?(?:e[+-]?\d+)?$/i.test(v) ? v : undefined;
}

/** Group samples into families named `<prefix>_<path joined by _>`. */
export function familiesFromSamples(samples: readonly PathSample[], opts: FamilyOptions = {}): MetricFamily[] {
  const prefix = opts.prefix ?? 'halon';
  const families = new Map<string, MetricFamily>();
  for (const s of samples) {
    const value = s.numeric ? metricValue(s.value) : undefined;
    if (value === undefined) continue;
    const name = [prefix, ...s.path].join('_');
    let f = families.get(name);
    if (!f) {
      f = { name, type: opts.typeOf?.(s.path) ?? 'gauge', samples: [] };
      const help = opts.helpOf?.(s.path);
      if (help) f.help = help;
      families.set(name, f);
    }
    f.samples.push({ labels: s.labels, value });
  }
  return [...families.values()];
}

function labelText(labels: MetricSample['labels']): string {
  return labels.length ? `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}` : '';
}

function renderFamily(f: MetricFamily, format: ExpositionFormat): string {
  const counter = f.type === 'counter';
  const family = counter && format === 'prometheus' ? `${f.name}_total` : f.name;
  const sample = counter ? `${f.name}_total` : f.name;
  let out = format === 'prometheus' && f.help ? `# HELP ${family} ${escapeHelp(f.help)}\n` : '';
  out += `# TYPE ${family} ${f.type}\n`;
  if (format === 'openmetrics' && f.help) out += `# HELP ${family} ${escapeHelp(f.help)}\n`;
  for (const s of f.samples) out += `${sample}${labelText(s.labels)} ${s.value}\n`;
  return out;
}

export function renderFamilies(families: readonly MetricFamily[], format: ExpositionFormat = 'openmetrics'): string {
  const body = families.map((f) => renderFamily(f, format)).join('');
  return format === 'openmetrics' ? `${body}# EOF\n` : body;
}
