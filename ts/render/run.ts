/** The text of `lutham run` (the Python side returns the numbers: lutham.runtime.run_file). */
import type { ProfileResult, RunResult } from '../lib/run.js';
import { escapeText } from './escape.js';
import { formatG, table } from './text.js';

/** The result lines (stdout); the warnings are runWarnings' (stderr). */
export function formatRun(r: RunResult): string {
  const lines = r.method === 'forward' ? [] : [`method: ${escapeText(r.method)}`];
  lines.push(...r.dtypes.map((d, i) => `output ${i}: ${d} [${r.outputs[i].join(', ')}]`));
  lines.push(`checksum: sum=${formatG(r.sum, 9)} abs_sum=${formatG(r.abs_sum, 9)}`);
  lines.push(`median: ${r.median_ms.toFixed(4)} ms over ${r.repeat} runs`);
  if (r.head_ms !== null && r.backbone_ms !== null) {
    // A head_k method has no backbone: what runs outside LuthamBackend there is glue.
    const rest = r.method.startsWith('head_') ? 'outside LuthamBackend' : 'backbone';
    lines.push(`  ${rest}: ${r.backbone_ms.toFixed(4)} ms, KAN heads (LuthamBackend): ${r.head_ms.toFixed(4)} ms`);
  }
  if (r.profile) lines.push('', formatProfile(r.profile));
  return lines.join('\n');
}

const ms = (v: number | null): string => (v === null ? '-' : (v * 1e3).toFixed(2));
const pct = (v: number): string => `${(v * 100).toFixed(1)}%`;

/** The Inspector's per-layer table: median µs per call and share of the run's median. */
export function formatProfile(p: ProfileResult): string {
  const rows = p.rows.map((row) => [escapeText(row.layer || '(top level)'), escapeText(row.backend), String(row.calls),
    ms(row.median_ms), pct(row.share), ms(row.basis_ms), ms(row.tables_edges_ms)]);
  const lines = [
    `profile (ExecuTorch ETDump, ${p.runs} runs): ${escapeText(p.etdump)}`,
    table(['layer', 'backend', 'calls', 'median µs', 'share', 'basis µs', 'tables+edges µs'], rows, [2, 3, 4, 5, 6]),
    `run (Method::execute): ${(p.run_median_ms).toFixed(4)} ms median`,
  ];
  if (p.lutham_median_ms !== null && p.lutham_share !== null)
    lines.push(`LuthamBackend: ${p.lutham_layers} layers, ${p.lutham_median_ms.toFixed(4)} ms median per run (${pct(p.lutham_share)} of the run)`);
  lines.push(p.etrecord
    ? `layers named from ${escapeText(p.etrecord)}; basis '-': the layer reused the bases another layer computed from the same input`
    : 'no ETRecord: LuthamBackend rows are named by delegate index (export --etrecord writes lutham.etrecord beside the .pte)');
  return lines.join('\n');
}

/** What the run warns about (NaN/Inf inputs or outputs), one line each, for stderr. */
export function runWarnings(r: RunResult): string[] {
  const lines: string[] = [];
  r.non_finite_inputs.forEach((n, i) => {
    if (n) lines.push(`warning: input ${i} has ${n} NaN/Inf value(s)`);
  });
  if (r.non_finite_outputs) lines.push(`warning: ${r.non_finite_outputs} output value(s) are NaN/Inf`);
  return lines;
}
