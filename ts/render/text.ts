/**
 * The building blocks of every text the CLI shows people: one byte formatter (SI units, as
 * `export`, `inspect`, `compare`, `run`, `bench` and `eval` print them), exact counts, the
 * number formats the Python side used to print (printf's %g and %e), and one plain-text table.
 */

/** Bytes in SI units: 999 -> "999 B", 1536 -> "1.54 kB", 254_012_345 -> "254.0 MB". */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 1 : 2)} ${units[i]}`;
}

/** An exact count with thousands separators: 1234567 -> "1,234,567". */
export function num(n: number): string {
  return n.toLocaleString('en-US');
}

/** An exact byte count and, from 1 kB on, its SI size: "1,234 (1.23 kB)". */
export function bytesCell(bytes: number): string {
  return bytes < 1000 ? `${num(bytes)} B` : `${num(bytes)} (${formatBytes(bytes)})`;
}

/** A value the Python side sent as a number, or as "NaN"/"Infinity"/"-Infinity" (JSON has none). */
export type JsonNumber = number | string;

function toNumber(v: JsonNumber): number {
  return typeof v === 'number' ? v : Number(v);
}

function nonFinite(x: number): string | null {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  return null;
}

/** printf's %.{digits}e: 1.2345e-5 -> "1.23e-05" (the exponent has at least two digits). */
export function formatExp(value: JsonNumber, digits: number): string {
  const x = toNumber(value);
  const special = nonFinite(x);
  if (special) return special;
  const [mantissa, exp] = x.toExponential(digits).split('e');
  const e = Number(exp);
  return `${Object.is(x, -0) ? '-' : ''}${mantissa}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
}

/** printf's %.{precision}g: the shorter of fixed and exponent form, trailing zeros removed. */
export function formatG(value: JsonNumber, precision: number): string {
  const x = toNumber(value);
  const special = nonFinite(x);
  if (special) return special;
  const p = Math.max(precision, 1);
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const e = Number(x.toExponential(p - 1).split('e')[1]);
  const strip = (s: string) => (s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s);
  if (e >= -4 && e < p) return strip(x.toFixed(p - 1 - e));
  const [mantissa] = x.toExponential(p - 1).split('e');
  return `${strip(mantissa)}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
}

export type Cell = string | number;

/**
 * A plain-text table: a rule under the header, columns two spaces apart, every column
 * left-aligned except those in `right` (default: all but the first), trailing blanks trimmed.
 */
export function table(header: string[], rows: Cell[][], right: number[] = header.map((_, i) => i).slice(1)): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) =>
    widths
      .map((w, c) => (right.includes(c) ? (r[c] ?? '').padStart(w) : (r[c] ?? '').padEnd(w)))
      .join('  ')
      .trimEnd();
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** A Markdown table; cells must not contain '|'. */
export function markdownTable(header: string[], rows: Cell[][]): string {
  const line = (cells: Cell[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Every non-empty line of `text` indented by `by`. */
export function indent(text: string, by = '  '): string {
  return text
    .split('\n')
    .map((l) => (l ? by + l : l))
    .join('\n');
}
