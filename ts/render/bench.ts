/** The Markdown of `lutham bench` (what `npm run bench` puts into BENCHMARKS.md). */
import type { BenchResult, BenchRow } from '../lib/bench.js';
import { formatBytes, formatExp, markdownTable } from './text.js';

const bytesOrDash = (n: number | null | undefined) => (n === null || n === undefined ? '-' : formatBytes(n));

// The flags that say which kernel variants this CPU can run.
const SIMD_FLAGS = /^(avx2|fma|avx512(f|bw|vl|vbmi|_vnni|vnni)|avx_vnni|asimd|asimddp|sve)$/;

function runnerCell(r: BenchRow): string {
  if (r.runner_median_ms === undefined) return '-';
  const kernel = r.runner_backend_median_ms !== undefined ? ` (kernel ${r.runner_backend_median_ms.toFixed(3)} ms)` : '';
  const vs = r.runner_vs_lutham !== undefined ? `${r.runner_vs_lutham.toFixed(2)}x` : '-';
  return `${r.runner_median_ms.toFixed(3)} ms${kernel}, ${vs}, ${r.runner_x_bound!.toFixed(2)}x`;
}

export function benchMarkdown(result: Omit<BenchResult, 'markdown'>): string {
  const m = result.model;
  const machine = result.machine;
  const bw = result.bandwidth;
  const flags = machine.flags.filter((f) => SIMD_FLAGS.test(f));
  const cold = result.modes.includes('cold');
  const lines = [
    `${m.heads} head(s) ${m.widths.join(' -> ')}, grid ${m.grid}, order ${m.order}, no backbone; ` +
      `${machine.cpu} (${flags.join(' ') || 'no SIMD flags listed'}), ${machine.cores} cores, LLC ${formatBytes(machine.llc_bytes)} ` +
      `per sysfs (load average ${machine.load_average_1min.toFixed(1)} when the runs ended: other jobs share the machine above 0); ` +
      `medians after ${result.warmup} warm-up runs (at least ${result.repeat} timed runs, each on a fresh input, ` +
      `each variant in its own process)` +
      (cold ? `; cold: ${formatBytes(result.evict_bytes!)} written before every run.` : '.'),
    '',
    markdownTable(
      ['variant', 'batch', 'mode', 'median', 'time / LUTHAM int', 'reads / inference', 'bound', 'time / bound',
        'lutham_runner (C++): median, / LUTHAM int, / bound', 'peak RSS (model)', 'file', 'rel. L2 error vs eager'],
      result.rows.map((r) => [
        r.label,
        r.batch,
        r.mode,
        `${r.median_ms.toFixed(3)} ms` + (r.backend_median_ms !== undefined ? ` (kernel ${r.backend_median_ms.toFixed(3)} ms)` : ''),
        `${r.vs_lutham.toFixed(2)}x`,
        formatBytes(r.read_bytes),
        `${r.bound_ms.toFixed(3)} ms`,
        `${r.x_bound.toFixed(2)}x`,
        runnerCell(r),
        `${bytesOrDash(r.peak_rss_bytes)} (${bytesOrDash(r.model_rss_bytes)})`,
        bytesOrDash(r.file_bytes),
        r.relative_l2_error_vs_eager === null ? '-' : formatExp(r.relative_l2_error_vs_eager, 2),
      ]),
    ),
    '',
    `Read bandwidth: ${(bw.bytes_per_second / 1e9).toFixed(2)} GB/s (median round ${(bw.median_bytes_per_second / 1e9).toFixed(2)} GB/s; ` +
      `${bw.method}, ${formatBytes(bw.buffer_bytes)} buffer). bound = bytes read per inference / that; ` +
      'LUTHAM reads its payloads + codebooks, the others their weights as stored in the .pte (int8 + scales, or fp32).',
  ];
  if (result.rows.some((r) => r.runner_median_ms !== undefined)) {
    lines.push('', 'lutham_runner times each .pte as a C++ app runs it (ExecuTorch Module, no Python): same inputs, ' +
      'fresh-input step, number of runs and eviction as the Python timing; the difference between the two medians is ' +
      'the cost of the Python call path (pybind, tensor conversion), which cold runs pay with cold code.');
  }
  if (result.rows.some((r) => r.basis_free)) {
    lines.push('', 'The "folded matmuls alone" rows get their basis for free: they are fed [silu(x), B(x)] of every layer ' +
      'as inputs and only multiply, the limit of any dense method on this CPU; a model that ships them still has to compute the basis.');
  }
  lines.push('', 'Peak RSS is the timing child\'s whole peak (Python, torch, ExecuTorch included); (model) is that ' +
    'minus its RSS just before loading the model (torch, ExecuTorch and LuthamBackend already loaded). The export of ' +
    'each program runs in a child of its own.');
  return lines.join('\n');
}
