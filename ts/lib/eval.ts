/** Library API of `lutham eval`: the Python side trains/loads the models and measures the tables
 * (py_bridge/lutham/evaluation); this file types and checks the results (ts/render/eval.ts shows them). */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { callPython, type Progress } from '../bridge/python.js';
import { LuthamError } from '../errors.js';
import { MAX_CODEBOOK_SIZE } from '../payload/format.js';
import type { SectionMarkers } from './markdown.js';
import { modelSpec } from './export.js';

export const EVAL_MODELS = ['pure_kan', 'vision_kan'] as const;
export type EvalModel = (typeof EVAL_MODELS)[number];

export interface EvalOptions {
  dataset?: string;
  data?: string;
  /** The range 8-bit pixels are mapped to ('-1,1' default, or '0,1'); float --data is fed as given. */
  pixels?: '0,1' | '-1,1';
  checkpoint?: string;
  /** With checkpoint `my_net.py:build`: the state dict to load into the model it builds. */
  weights?: string;
  /** Unpickle Python objects from --checkpoint/--weights (a whole pickled module): runs the file's code. */
  trustPickle?: boolean;
  subset?: number;
  epochs?: number;
  seed?: number;
  models?: EvalModel[];
  codebookSize?: number;
  gainBits?: number;
  biasBits?: number;
  baseBits?: number;
  finetuneCodebook?: boolean;
  /** Also run SHARe-KAN int in the int8 compute mode (a fourth Table 1 row). */
  int8Compute?: boolean;
  engine?: 'auto' | 'eager';
  ks?: number[];
  sparsities?: number[];
  uniformBits?: number[];
  threads?: number;
}

export interface AccuracyRow {
  accuracy: number;
  se: number;
  bytes: number;
  bytes_per_edge: number;
  ratio: number;
  engine: 'executorch' | 'eager';
}

export interface Table1Row extends AccuracyRow {
  method: string;
  eager_accuracy?: number;
  K?: number;
  K_layers?: number[];
  r2_layers?: number[];
  analytic_bytes?: number;
}

export interface SaturationRow extends AccuracyRow {
  K: number;
  K_layers: number[];
  r2: number;
  r2_layers: number[];
  exact_layers: boolean[];
}

export interface BaselineRow extends AccuracyRow {
  method: string;
  setting: string;
  K?: number;
  bits?: number;
  equal_bytes?: boolean;
}

export interface PruningRow extends AccuracyRow {
  sparsity: number;
  sharekan: { label: string; accuracy: number; se: number; bytes: number; ratio: number } | null;
}

export interface ModelResults {
  kind: string;
  label: string;
  edges: number;
  layer_edges: number[];
  dense_bytes: number;
  engine: 'executorch' | 'eager';
  engine_note: string | null;
  table1: Table1Row[];
  saturation: SaturationRow[];
  saturation_r2_layer: number;
  baselines: BaselineRow[];
  equal_bytes: { budget_bytes: number; plain_kmeans_K: number; calibration_images: number };
  pruning: PruningRow[];
  training: Record<string, unknown>;
}

export interface EvalResults {
  lutham_eval: 1;
  dataset: { name: string; source: string; train: number; test: number; classes: number; input_shape: number[]; notes: string[]; pixels?: string };
  settings: { codebook_size: number; gain_bits: number; bias_bits: number; base_bits: number; codebook_bits: number; seed: number; subset: number | null; finetune_codebook: boolean; int8_compute?: boolean; threads: number };
  models: ModelResults[];
  target: { model: string; dense: number; sharekan_int: number; drop_points: number; ratio: number; engine: string; max_drop_points: number; min_ratio: number; met: boolean; text: string };
  /** e.g. a Dense accuracy near chance ("check the input scaling"); absent in older results. */
  warnings?: string[];
  seconds: number;
}

function positiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new LuthamError(`${name} must be a positive integer, got ${v}`);
}

/** Checks what can be checked without Python. */
export function validateEvalOptions(o: EvalOptions): void {
  positiveInt('--subset', o.subset);
  positiveInt('--epochs', o.epochs);
  positiveInt('--codebook-size', o.codebookSize);
  positiveInt('--threads', o.threads);
  if (o.codebookSize !== undefined && o.codebookSize > MAX_CODEBOOK_SIZE) throw new LuthamError(`--codebook-size must be at most ${MAX_CODEBOOK_SIZE}, got ${o.codebookSize}`);
  for (const [flag, v] of [['--gain-bits', o.gainBits], ['--bias-bits', o.biasBits], ['--base-bits', o.baseBits]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 2 && v <= 8)) throw new LuthamError(`${flag} must be 2..8, got ${v}`);
  }
  if (o.dataset !== undefined && o.dataset !== 'fashion-mnist' && !o.data) throw new LuthamError(`unknown --dataset '${o.dataset}' (fashion-mnist, or pass --data)`);
  if (o.pixels !== undefined && !['0,1', '-1,1'].includes(o.pixels)) throw new LuthamError(`--pixels must be 0,1 or -1,1, got '${o.pixels}'`);
  if (o.data && !existsSync(o.data)) throw new LuthamError(`--data: no such file or folder ${o.data}`);
  if (o.checkpoint) modelSpec(o.checkpoint, '--checkpoint');
  if (o.weights && !o.checkpoint) throw new LuthamError('--weights goes with --checkpoint');
  if (o.weights && !existsSync(o.weights)) throw new LuthamError(`--weights: no such file ${o.weights}`);
  if (o.models?.some((m) => !EVAL_MODELS.includes(m))) throw new LuthamError(`--models must be among ${EVAL_MODELS.join(', ')}, got ${o.models.join(',')}`);
  o.ks?.forEach((k) => positiveInt('--ks', k));
  o.uniformBits?.forEach((b) => { if (!(Number.isInteger(b) && b >= 2 && b <= 8)) throw new LuthamError(`--uniform-bits must be 2..8, got ${b}`); });
  o.sparsities?.forEach((s) => { if (!(s >= 0 && s < 1)) throw new LuthamError(`--sparsities must be in [0, 1), got ${s}`); });
}

/** The JSON arguments of the Python `evaluate`/`report` bridge functions. */
export function evalArgs(o: EvalOptions): Record<string, unknown> {
  return {
    dataset: o.dataset ?? 'fashion-mnist',
    data: o.data ? resolve(o.data) : null,
    pixels: o.pixels ?? null,
    checkpoint: o.checkpoint ? modelSpec(o.checkpoint, '--checkpoint') : null,
    weights: o.weights ? resolve(o.weights) : null,
    trust_pickle: o.trustPickle ?? false,
    subset: o.subset ?? null,
    epochs: o.epochs ?? null,
    seed: o.seed ?? 0,
    models: o.models ?? null,
    codebook_size: o.codebookSize ?? null,
    gain_bits: o.gainBits ?? null,
    bias_bits: o.biasBits ?? null,
    base_bits: o.baseBits ?? null,
    finetune_codebook: o.finetuneCodebook ?? false,
    int8_compute: o.int8Compute ?? false,
    engine: o.engine ?? 'auto',
    ks: o.ks ?? null,
    sparsities: o.sparsities ?? null,
    uniform_bits: o.uniformBits ?? null,
    threads: o.threads ?? null,
  };
}

export async function runEval(o: EvalOptions, progress?: Progress): Promise<EvalResults> {
  validateEvalOptions(o);
  return (await callPython('evaluate', evalArgs(o), progress)) as EvalResults;
}

/** Throws a LuthamError unless `r` looks like the output of `lutham eval --json`. */
export function checkResults(r: unknown, where: string): EvalResults {
  const x = r as EvalResults;
  if (!x || typeof x !== 'object' || x.lutham_eval !== 1 || !Array.isArray(x.models)) {
    throw new LuthamError(`${where} is not the output of 'lutham eval --json'`);
  }
  for (const m of x.models) {
    for (const key of ['table1', 'saturation', 'baselines', 'pruning'] as const) {
      if (!Array.isArray(m[key])) throw new LuthamError(`${where}: model ${m.kind ?? '?'} has no '${key}' list`);
    }
  }
  return x;
}

/** The BENCHMARKS.md section that `lutham eval --update` and `lutham report --update` rewrite. */
export const EVAL_SECTION: SectionMarkers = {
  begin: '<!-- lutham eval: begin (lutham eval --update or lutham report --results ... --update regenerates this section) -->',
  end: '<!-- lutham eval: end -->',
};
