/** Library API of `lutham eval`: the Python side trains/loads the models and measures the tables
 * (py_bridge/lutham/evaluation); this file types the results and formats them as text. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { callPython, type Progress } from '../bridge/python.js';
import { LuthamError } from '../errors.js';
import { formatBytes, table } from './format.js';
import { markdownTable, type SectionMarkers } from './markdown.js';
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
  settings: { codebook_size: number; gain_bits: number; bias_bits: number; base_bits: number; codebook_bits: number; seed: number; subset: number | null; finetune_codebook: boolean; threads: number };
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
  if (o.codebookSize !== undefined && o.codebookSize > 65536) throw new LuthamError(`--codebook-size must be at most 65536, got ${o.codebookSize}`);
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

// ---------------------------------------------------------------- text output

export const pct = (a: number) => `${(a * 100).toFixed(2)}%`;
export const accSe = (a: number, se: number) => `${(a * 100).toFixed(2)} ± ${(se * 100).toFixed(2)}`;
export const ratioText = (r: number | null | undefined) => (r === null || r === undefined ? '-' : `${r.toFixed(1)}x`);

function engineOf(rows: { engine: string }[]): string {
  const e = [...new Set(rows.map((r) => r.engine))];
  return e.join('/');
}

/** One table of a model's results as cells; the report's HTML and BENCHMARKS.md's Markdown render it. */
export interface ResultTable {
  header: string[];
  rows: (string | number)[][];
}

/**
 * The four tables of one model (Table 1, VQ saturation, pruning cliff, baselines) as the report and
 * BENCHMARKS.md show them. `bytes` formats Table 1's byte counts. (formatModel's terminal tables still
 * choose their own labels.)
 */
export function modelTables(m: ModelResults, s: EvalResults['settings'], bytes: (n: number) => string = formatBytes) {
  const dense = m.table1[0];
  const sk = m.table1[2];
  const table1: ResultTable = {
    header: ['method', 'accuracy % (± SE)', 'Δ vs Dense (points)', 'KAN-layer bytes', 'bytes/edge', 'ratio', 'measured with'],
    rows: m.table1.map((r) => [r.method, accSe(r.accuracy, r.se), r === dense ? '' : ((r.accuracy - dense.accuracy) * 100).toFixed(2),
      bytes(r.bytes), r.bytes_per_edge.toFixed(2), ratioText(r.ratio), r.engine === 'executorch' ? 'ExecuTorch (lutham.pte, LuthamBackend)' : 'PyTorch eager']),
  };
  const saturation: ResultTable = {
    header: ['K', 'K per layer', 'R²', 'accuracy % (± SE)', 'bytes/edge', 'ratio'],
    rows: m.saturation.map((r) => [r.K, r.K_layers.join(' / '), r.r2.toFixed(4), accSe(r.accuracy, r.se), r.bytes_per_edge.toFixed(2), ratioText(r.ratio)]),
  };
  const pruning: ResultTable = {
    header: ['sparsity', 'accuracy % (± SE)', 'bytes/edge', 'ratio', 'SHARe-KAN at ≤ bytes', 'its accuracy', 'its ratio'],
    rows: m.pruning.map((r) => [`${Math.round(r.sparsity * 100)}%`, accSe(r.accuracy, r.se), r.bytes_per_edge.toFixed(2), ratioText(r.ratio),
      r.sharekan?.label ?? '-', r.sharekan ? accSe(r.sharekan.accuracy, r.sharekan.se) : '-', ratioText(r.sharekan?.ratio)]),
  };
  const baselines: ResultTable = {
    header: ['method', 'setting', 'accuracy % (± SE)', 'bytes/edge', 'ratio', 'measured with'],
    rows: [{ ...sk, method: 'SHARe-KAN int (reference)', setting: `K=${sk.K ?? s.codebook_size}`, equal_bytes: false }, ...m.baselines]
      .map((r) => [r.method + (r.equal_bytes ? ' (equal bytes)' : ''), r.setting, accSe(r.accuracy, r.se), r.bytes_per_edge.toFixed(2), ratioText(r.ratio), r.engine]),
  };
  return { table1, saturation, pruning, baselines };
}

export function formatModel(m: ModelResults, s: EvalResults['settings']): string {
  const dense = m.table1[0];
  const lines: string[] = [];
  lines.push(`== ${m.label}: ${m.edges.toLocaleString('en-US')} KAN edges (layers ${m.layer_edges.join(' + ')}) ==`);
  lines.push('');
  lines.push(`Table 1. Test accuracy (%, ± standard error) and KAN-layer storage at K = ${s.codebook_size}`);
  lines.push(table(
    ['method', 'accuracy', 'Δ vs dense', 'KAN bytes', 'B/edge', 'ratio', 'measured with'],
    m.table1.map((r) => [r.method, accSe(r.accuracy, r.se), r === dense ? '' : `${((r.accuracy - dense.accuracy) * 100).toFixed(2)}`,
      formatBytes(r.bytes), r.bytes_per_edge.toFixed(2), ratioText(r.ratio), r.engine === 'executorch' ? 'executorch (lutham.pte)' : 'eager (PyTorch)']),
  ));
  lines.push(`SHARe-KAN int: int${s.codebook_bits} codebook, ${s.gain_bits}-bit gains, ${s.bias_bits}-bit biases, ${s.base_bits}-bit base weights, packed indices`);
  if (m.engine_note) lines.push(`note: ${m.engine_note}`);
  lines.push('');
  const r2layer = m.saturation_r2_layer;
  lines.push(`VQ saturation: R^2 of the coefficients (layer ${r2layer}, the largest) and accuracy vs K (int, eager; K capped at the layer's edges)`);
  lines.push(table(
    ['K', 'K per layer', 'R^2', 'accuracy', 'B/edge', 'ratio'],
    m.saturation.map((r) => [r.K, r.K_layers.join('/'), r.r2.toFixed(4), accSe(r.accuracy, r.se), r.bytes_per_edge.toFixed(2), ratioText(r.ratio)]),
  ));
  lines.push('');
  lines.push(`Pruning cliff: magnitude pruning of whole edges, no fine-tune (eager), next to the best SHARe-KAN measured at no more bytes`);
  lines.push(table(
    ['sparsity', 'accuracy', 'B/edge', 'ratio', 'SHARe-KAN at <= bytes', 'its accuracy', 'its ratio'],
    m.pruning.map((r) => [`${Math.round(r.sparsity * 100)}%`, accSe(r.accuracy, r.se), r.bytes_per_edge.toFixed(2), ratioText(r.ratio),
      r.sharekan?.label ?? '-', r.sharekan ? accSe(r.sharekan.accuracy, r.sharekan.se) : '-', ratioText(r.sharekan?.ratio)]),
  ));
  lines.push('');
  const sk = m.table1[2];
  lines.push(`Baselines (equal bytes: SHARe-KAN int uses ${formatBytes(m.equal_bytes.budget_bytes)}; plain k-means fits that at K = ${m.equal_bytes.plain_kmeans_K})`);
  const rows = [
    { ...sk, method: `SHARe-KAN int (reference)`, setting: `K=${sk.K ?? s.codebook_size}` },
    ...m.baselines,
  ];
  lines.push(table(
    ['method', 'setting', 'accuracy', 'B/edge', 'ratio', 'measured with'],
    rows.map((r) => [r.method + (('equal_bytes' in r && r.equal_bytes) ? ' *' : ''), r.setting, accSe(r.accuracy, r.se), r.bytes_per_edge.toFixed(2), ratioText(r.ratio), r.engine]),
  ));
  lines.push(`* at equal bytes with SHARe-KAN int${m.equal_bytes.calibration_images ? `; codebook fine-tune: ${m.equal_bytes.calibration_images} training images, codebooks only` : ''}`);
  lines.push(`measured with: ${engineOf(m.table1.slice(1))} for the compressed Table 1 rows, eager elsewhere unless marked`);
  return lines.join('\n');
}

/** The BENCHMARKS.md section that `lutham eval --update` and `lutham report --update` rewrite. */
export const EVAL_SECTION: SectionMarkers = {
  begin: '<!-- lutham eval: begin (lutham eval --update or lutham report --results ... --update regenerates this section) -->',
  end: '<!-- lutham eval: end -->',
};

const grouped = (n: number) => n.toLocaleString('en-US');

function modelMarkdown(m: ModelResults, s: EvalResults['settings']): string {
  const t = modelTables(m, s, grouped); // exact byte counts, as everywhere in BENCHMARKS.md
  const epochs = m.training.epochs;
  const eb = m.equal_bytes;
  const out: string[] = [];
  out.push(`### ${m.label}`, '');
  out.push(`${grouped(m.edges)} edges. ${typeof epochs === 'number' ? `Training: ${epochs} epochs, seed ${s.seed}.` : `Model: ${String(m.training.checkpoint ?? 'given')}.`}`, '');
  out.push('Table 1 (compressed rows: `lutham.pte` run through ExecuTorch with the C++ LuthamBackend):', '');
  out.push(markdownTable(t.table1.header, t.table1.rows));
  if (m.engine_note) out.push('', `Note: ${m.engine_note}`);
  out.push('', "VQ saturation (int, eager; K capped at the layer's edges):", '');
  out.push(markdownTable(t.saturation.header, t.saturation.rows));
  out.push('', 'Pruning cliff (whole edges by magnitude, no fine-tune, eager) vs the best SHARe-KAN measured at no more bytes:', '');
  out.push(markdownTable(t.pruning.header, t.pruning.rows));
  out.push('', `Baselines (SHARe-KAN int uses ${grouped(eb.budget_bytes)} B by the analytic count; plain k-means fits that at K = ${eb.plain_kmeans_K}` +
    `${eb.calibration_images ? `; fine-tune: ${eb.calibration_images} training images, codebooks only` : ''}):`, '');
  out.push(markdownTable(t.baselines.header, t.baselines.rows));
  return out.join('\n');
}

/** The eval results as the Markdown of BENCHMARKS.md's accuracy section. */
export function evalMarkdown(r: EvalResults): string {
  const s = r.settings;
  const out: string[] = [];
  out.push(`Data: ${r.dataset.name} (${r.dataset.source}), ${r.dataset.train} training / ${r.dataset.test} test images` +
    `${s.subset ? ` (--subset ${s.subset})` : ''}. Accuracy is on the ${grouped(r.dataset.test)} test images, ± one binomial standard error. ` +
    `Bytes are the KAN layers only, as stored in the .pte where measured with executorch. SHARe-KAN int = K ${s.codebook_size}, ` +
    `int${s.codebook_bits} codebook, ${s.gain_bits}-bit gains, ${s.bias_bits}-bit biases, ${s.base_bits}-bit base weights.`);
  if (r.target?.text) {
    const t = r.target;
    out.push('', `**Target** (${r.models.find((m) => m.kind === t.model)?.label ?? t.model}: SHARe-KAN int within ${t.max_drop_points} points of Dense at >= ${t.min_ratio}x KAN-layer storage): ` +
      `**${t.met ? 'met' : 'not met'}**. ${t.text.replace(/^(NOT )?MET: /, '')}.`);
  }
  for (const m of r.models) out.push('', modelMarkdown(m, s));
  return out.join('\n') + '\n';
}

export function formatEval(r: EvalResults): string {
  const out: string[] = [];
  out.push(`Dataset: ${r.dataset.name} (${r.dataset.source}): ${r.dataset.train} training / ${r.dataset.test} test images${r.settings.subset ? ` (--subset ${r.settings.subset})` : ''}` +
    (r.dataset.pixels ? `, pixels ${r.dataset.pixels === '-1,1' || r.dataset.pixels === '0,1' ? `in [${r.dataset.pixels}]` : r.dataset.pixels}` : ''));
  out.push('');
  for (const m of r.models) {
    out.push(formatModel(m, r.settings));
    out.push('');
  }
  if (r.target?.text) out.push(`Target (${r.target.model}): ${r.target.text}`);
  out.push(`(${r.seconds} s)`);
  return out.join('\n');
}
