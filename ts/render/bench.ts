/** The Markdown of `lutham bench` (what `npm run bench` puts into BENCHMARKS.md). */
import type { BenchResult } from '../lib/bench.js';
import { formatBytes, formatExp, markdownTable } from './text.js';

const bytesOrDash = (n: number | null | undefined) => (n === null || n === undefined ? '-' : formatBytes(n));

export function benchMarkdown(result: Omit<BenchResult, 'markdown'>): string {
  const m = result.model;
  const machine = result.machine;
  const lines = [
    `${m.heads} head(s) ${m.widths.join(' -> ')}, grid ${m.grid}, order ${m.order}, no backbone; ` +
      `${machine.cpu}, ${machine.cores} cores (load average ${machine.load_average_1min.toFixed(1)} ` +
      `when the runs ended: other jobs share the machine above 0); medians after ${result.warmup} warm-up runs ` +
      `(at least ${result.repeat} timed runs, each variant in its own process).`,
    '',
    markdownTable(
      ['variant', 'batch', 'median', 'time / LUTHAM int', 'peak RSS (model)', 'file', 'rel. L2 error vs eager'],
      result.rows.map((r) => [
        r.label,
        r.batch,
        `${r.median_ms.toFixed(3)} ms`,
        `${r.vs_lutham.toFixed(2)}x`,
        `${bytesOrDash(r.peak_rss_bytes)} (${bytesOrDash(r.model_rss_bytes)})`,
        bytesOrDash(r.file_bytes),
        r.relative_l2_error_vs_eager === null ? '-' : formatExp(r.relative_l2_error_vs_eager, 2),
      ]),
    ),
    '',
    `Read bandwidth (copy loop, same run): ${(result.bandwidth.bytes_per_second / 1e9).toFixed(2)} GB/s.`,
  ];
  for (const r of result.rows) {
    if (r.kernel_read_bytes === undefined) continue;
    lines.push(`- ${r.label}, batch ${r.batch}: reads ${formatBytes(r.kernel_read_bytes)} per inference ` +
      `(codebooks ${formatBytes(r.codebook_bytes!)} resident); bandwidth bound ${r.bound_ms!.toFixed(3)} ms; ` +
      `LUTHAM takes ${r.x_bound!.toFixed(1)}x the bound`);
  }
  lines.push('', 'Peak RSS is the child process\'s whole peak (Python, torch, ExecuTorch included); (model) is that ' +
    'minus its RSS just before loading the model (torch, ExecuTorch and LuthamBackend already loaded).');
  return lines.join('\n');
}
