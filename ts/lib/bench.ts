/**
 * Library API of `lutham bench`: LUTHAM against PyTorch eager, dense.pte, the folded dense
 * model on XNNPACK (fp32, dynamic int8) and the folded matmuls alone (basis for free), warm and
 * cold, against each one's read-bandwidth bound; each variant in its own child processes of one Python run
 * (py_bridge/lutham/bench/compare.py), and their Markdown (ts/render/bench.ts), the BENCHMARKS.md section
 * that `npm run bench` regenerates.
 */
import { callPython, type Progress } from '../bridge/python.js';
import { LuthamError } from '../errors.js';
import { benchMarkdown } from '../render/bench.js';
import type { SectionMarkers } from './markdown.js';

export const BENCH_VARIANTS = ['eager', 'dense', 'folded-fp32', 'folded-int8', 'matmul-fp32', 'matmul-int8', 'lutham-int', 'lutham-int8', 'lutham-fp32'] as const;
export type BenchVariant = (typeof BENCH_VARIANTS)[number];

export interface BenchOptions {
  heads?: number;
  batches?: number[];
  widths?: number[];
  grid?: number;
  codebookSize?: number;
  seed?: number;
  warmup?: number;
  repeat?: number;
  /** Keep timing each batch until this many seconds have passed (after `repeat` runs). */
  minSeconds?: number;
  variants?: BenchVariant[];
  /** Buffer (MiB) of lutham_membw's read-only loop (default: max(1 GiB, 4x the LLC)). */
  bandwidthMb?: number;
  /** Also time every variant with the caches evicted before each run. */
  cold?: boolean;
  /** MiB written before each cold run (default: max(512, 2x the LLC)). */
  evictMib?: number;
}

export interface BenchRow {
  variant: BenchVariant;
  label: string;
  batch: number;
  mode: 'warm' | 'cold';
  median_ms: number;
  runs: number;
  /** median / LUTHAM int's median at the same batch, in the same run. */
  vs_lutham: number;
  peak_rss_bytes: number;
  model_rss_bytes: number;
  file_bytes: number | null;
  relative_l2_error_vs_eager: number | null;
  /** The matmul-* variants are fed [silu(x), B(x)]: their basis costs nothing. */
  basis_free: boolean;
  export_peak_rss_bytes: number | null;
  /** Bytes the program reads per inference (its weights, from its .pte) and how they were counted. */
  read_bytes: number;
  read_bytes_method: string;
  /** read_bytes / read bandwidth, and median / that. */
  bound_ms: number;
  x_bound: number;
  /** LUTHAM only: median time inside LuthamBackend::execute. */
  backend_median_ms?: number;
  backend_x_bound?: number;
  codebook_bytes?: number;
  /** Every .pte: build/delegate/lutham_runner's median (C++, no Python), that / LUTHAM int's,
   * that / bound, and (LUTHAM) its time inside LuthamBackend::execute. */
  runner_median_ms?: number;
  runner_vs_lutham?: number;
  runner_x_bound?: number;
  runner_backend_median_ms?: number;
}

export interface BenchResult {
  model: { heads: number; widths: number[]; grid: number; order: number; seed: number; backbone: string };
  batches: number[];
  modes: ('warm' | 'cold')[];
  evict_bytes: number | null;
  warmup: number;
  repeat: number;
  reference: BenchVariant;
  bandwidth: { bytes_per_second: number; median_bytes_per_second: number; threads: number; buffer_bytes: number; rounds: number; method: string };
  machine: { cpu: string; flags: string[]; cores: number; llc_bytes: number; torch_threads: number; load_average_1min: number };
  rows: BenchRow[];
  /** The results as Markdown (ts/render/bench.ts): what --update writes. */
  markdown: string;
}

/** The BENCHMARKS.md section that `lutham bench --update` (npm run bench) rewrites. */
export const BENCH_SECTION: SectionMarkers = {
  begin: '<!-- lutham bench: begin (npm run bench regenerates this section) -->',
  end: '<!-- lutham bench: end -->',
};

function check(flag: string, v: number | undefined, min: number, integer = true): void {
  if (v !== undefined && (!Number.isFinite(v) || v < min || (integer && !Number.isInteger(v)))) {
    throw new LuthamError(`${flag} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${v}`);
  }
}

export function validateBenchOptions(o: BenchOptions): void {
  check('--heads', o.heads, 1);
  check('--grid', o.grid, 1);
  check('--codebook-size', o.codebookSize, 1);
  check('--seed', o.seed, 0);
  check('--warmup', o.warmup, 0);
  check('--repeat', o.repeat, 1);
  check('--min-seconds', o.minSeconds, 0, false);
  check('--bandwidth-mb', o.bandwidthMb, 1);
  check('--evict-mib', o.evictMib, 1);
  if (o.batches !== undefined) {
    if (o.batches.length === 0 || o.batches.some((b) => !Number.isInteger(b) || b < 1)) {
      throw new LuthamError(`--batch must be positive integers like 1,32, got ${o.batches.join(',')}`);
    }
  }
  if (o.widths && (o.widths.length < 2 || o.widths.some((w) => !Number.isInteger(w) || w < 1))) {
    throw new LuthamError(`--widths needs at least two positive integers, e.g. 2048,512,25; got ${o.widths.join(',')}`);
  }
  for (const v of o.variants ?? []) {
    if (!BENCH_VARIANTS.includes(v)) throw new LuthamError(`unknown variant '${v}' (choose from ${BENCH_VARIANTS.join(', ')})`);
  }
}

export async function runBench(o: BenchOptions, progress?: Progress): Promise<BenchResult> {
  validateBenchOptions(o);
  const result = (await callPython('bench', {
    heads: o.heads ?? 1,
    batches: o.batches ?? [1, 32],
    widths: o.widths ?? null,
    grid: o.grid ?? null,
    codebook_size: o.codebookSize ?? null,
    seed: o.seed ?? 0,
    warmup: o.warmup ?? 3,
    repeat: o.repeat ?? 10,
    min_seconds: o.minSeconds ?? 1,
    variants: o.variants ?? null,
    bandwidth_mb: o.bandwidthMb ?? null,
    cold: o.cold ?? false,
    evict_mib: o.evictMib ?? null,
  }, progress)) as Omit<BenchResult, 'markdown'>;
  return { ...result, markdown: benchMarkdown(result) };
}

