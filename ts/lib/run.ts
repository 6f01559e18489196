/** Library API of `lutham run`: a .pte through the ExecuTorch runtime with LuthamBackend loaded. */
import { totalmem } from 'node:os';
import { resolve } from 'node:path';
import { callPython } from '../bridge/python.js';
import { LuthamError } from '../errors.js';
import { PteFile } from '../pte/file.js';
import { describePlans } from '../pte/program.js';
import type { JsonNumber } from '../render/text.js';

export interface RunOptions {
  model: string;
  /** The method to run (default forward; export --methods per-head adds backbone and head_k). */
  method?: string;
  /** The .ptd holding the program's external data (its codebooks, with export --external-data). */
  data?: string;
  inputs?: string[];
  output?: string;
  repeat?: number;
  seed?: number;
  /** Profile the runs with ExecuTorch's ETDump, written to this file (run --profile). */
  etdump?: string;
  /** The ETRecord naming the profile's layers (default: lutham.etrecord beside the .pte, if there). */
  etrecord?: string;
}

/** One row of the profile: a LuthamBackend layer, another delegate call, or a portable operator. */
export interface ProfileRow {
  /** The module path of the row's graph node (heads.7.layers.1); "" for the top level. */
  layer: string;
  backend: string;
  calls: number;
  median_ms: number;
  /** median_ms over the run's median (Method::execute). */
  share: number;
  /** LuthamBackend layers: the medians of its two phases (basis null when the layer reused a shared preparation). */
  basis_ms: number | null;
  tables_edges_ms: number | null;
}

/** ExecuTorch's Inspector over the ETDump of the runs (lutham.run.profile.profile_table). */
export interface ProfileResult {
  etdump: string;
  etrecord: string | null;
  runs: number;
  run_median_ms: number;
  rows: ProfileRow[];
  lutham_layers: number;
  /** Per run, the LuthamBackend layers summed: the median, its share of the run, every run's value. */
  lutham_median_ms: number | null;
  lutham_share: number | null;
  lutham_run_ms: number[];
}

export interface RunResult {
  model: string;
  method: string;
  outputs: number[][];
  dtypes: string[];
  /** A number, or "NaN"/"Infinity"/"-Infinity" when the outputs hold non-finite values. */
  sum: JsonNumber;
  abs_sum: JsonNumber;
  median_ms: number;
  repeat: number;
  output: string | null;
  /** Median ms inside LuthamBackend (the KAN heads) and of the rest (backbone + glue); null when not measurable. */
  head_ms: number | null;
  backbone_ms: number | null;
  /** How the split was measured, or why it is unavailable. */
  split: string;
  /** NaN/Inf values per input, and in all outputs together. */
  non_finite_inputs: number[];
  non_finite_outputs: number;
  /** With etdump: the per-layer profile. */
  profile?: ProfileResult;
}

export async function runProgram(o: RunOptions): Promise<RunResult> {
  // the same rule as export's --seed (1.5 used to act as 1, -1 reached torch)
  if (o.seed !== undefined && (!Number.isInteger(o.seed) || o.seed < 0)) throw new LuthamError(`--seed must be a non-negative integer, got ${o.seed}`);
  if (o.repeat !== undefined && (!Number.isInteger(o.repeat) || o.repeat < 1)) throw new LuthamError(`--repeat must be a positive integer, got ${o.repeat}`);
  // ExecuTorch aborts the whole process on some malformed files: read them with our checked
  // reader first (what `lutham inspect` does), which turns garbage into a one-line error.
  // describePlans also refuses a delegate without its processed data, which ExecuTorch 1.5.1's
  // BackendDelegate::Init dereferences unchecked (a one-bit flip in the program did that), and
  // a nameless operator or an index past its table. ExecuTorch allocates the memory plan up
  // front: one that cannot fit this machine is refused here, not as a std::bad_alloc.
  const plans = await PteFile.with(resolve(o.model), (pte) => describePlans(pte));
  for (const plan of plans) {
    if (plan.plannedBytes > totalmem())
      throw new LuthamError(`${o.model}: the memory plan of plan ${plan.index} asks for ${BigInt(plan.plannedBytes)} bytes, more than this machine's ${totalmem()}`);
  }
  return (await callPython('run', {
    model: resolve(o.model),
    method: o.method ?? 'forward',
    data: o.data ? resolve(o.data) : null,
    inputs: (o.inputs ?? []).map((p) => resolve(p)),
    output: o.output ? resolve(o.output) : null,
    repeat: o.repeat ?? 10,
    seed: o.seed ?? 0,
    profile: o.etdump ? resolve(o.etdump) : null,
    etrecord: o.etrecord ? resolve(o.etrecord) : null,
  })) as RunResult;
}
