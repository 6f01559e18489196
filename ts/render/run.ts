/** The text of `lutham run` (the Python side returns the numbers: lutham.runtime.run_file). */
import type { RunResult } from '../lib/run.js';
import { formatG } from './text.js';

/** The result lines (stdout); the warnings are runWarnings' (stderr). */
export function formatRun(r: RunResult): string {
  const lines = r.dtypes.map((d, i) => `output ${i}: ${d} [${r.outputs[i].join(', ')}]`);
  lines.push(`checksum: sum=${formatG(r.sum, 9)} abs_sum=${formatG(r.abs_sum, 9)}`);
  lines.push(`median: ${r.median_ms.toFixed(4)} ms over ${r.repeat} runs`);
  if (r.head_ms !== null && r.backbone_ms !== null) {
    lines.push(`  backbone: ${r.backbone_ms.toFixed(4)} ms, KAN heads (LuthamBackend): ${r.head_ms.toFixed(4)} ms`);
  }
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
