/** Library API of `lutham export`: the CLI command and the tests both call exportModels(). */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { callPython, type Progress } from '../bridge/python.js';
import { LuthamError } from '../errors.js';
import { COMPUTE_NAMES, MAX_CODEBOOK_SIZE, MAX_INDEX_BITS } from '../payload/format.js';

/** The most codewords the int8 mode takes (one-byte indices, a 256-entry table row). */
export const INT8_MAX_CODEBOOK = 256;
import { comparePte, type Comparison } from '../pte/compare.js';

export const BACKBONES = ['resnet50', 'resnet18', 'mobilenet_v3_small', 'none'] as const;
export type Backbone = (typeof BACKBONES)[number];
/** lutham.pte's methods: forward only, or also backbone and head_k (py_bridge/lutham/exporter/methods.py). */
export const EXPORT_METHODS = ['forward', 'per-head'] as const;
export type ExportMethods = (typeof EXPORT_METHODS)[number];

export interface ExportOptions {
  backbone: Backbone;
  heads: number;
  out: string;
  widths?: number[];
  grid?: number;
  order?: number;
  weights?: string;
  /** Unpickle Python objects from --model/--weights (a whole pickled module): runs the file's code. */
  trustPickle?: boolean;
  /** Accept a checkpoint that lacks some of the model's tensors. */
  allowPartial?: boolean;
  seed?: number;
  codebookSize?: number;
  codebookScope?: 'heads' | 'layer';
  int8?: boolean;
  gainBits?: number;
  biasBits?: number;
  baseBits?: number;
  /** The user's own model instead of backbone + heads: model.pt, model.pt2 or my_net.py:build. */
  model?: string;
  /** Input shape for --model when it cannot be inferred, e.g. [1, 1, 28, 28]. */
  inputShape?: number[];
  /** Both programs serve any batch from 1 to maxBatch (dynamic batch dimension); default 1. */
  maxBatch?: number;
  /** Measure the Dense-int8-XNNPACK baseline's size (default true). */
  int8Baseline?: boolean;
  /** Put the codebooks in lutham.ptd (ExecuTorch external data) instead of lutham.pte. */
  externalData?: boolean;
  /** Also write lutham.etrecord (the ETRecord run --profile names layers from). */
  etrecord?: boolean;
  /** A .ptd whose codebooks are reused instead of trained (programs that share one .ptd). */
  codebooksFrom?: string;
  /** Fine-tune the codebooks and gains against the dense model's outputs on `calibration` before lowering. */
  finetuneCodebook?: boolean;
  /** A .npz holding one float array of inputs (N, ...the model's input shape). */
  calibration?: string;
  /** Passes over the calibration inputs (default 20). */
  finetuneEpochs?: number;
  /** per-head: lutham.pte also has backbone (unless --backbone none) and head_0..head_{N-1} (default forward only). */
  methods?: ExportMethods;
  /** How LuthamBackend computes the layers: 'float' (default, exact float32) or the opt-in 'int8' mode. */
  compute?: (typeof COMPUTE_NAMES)[number];
}

export interface ExportReport {
  /** Built models: the config + head_widths; --model: source, input_shape, kan_layers, seed. */
  model: Record<string, unknown> & ({ head_widths: number[] } | { source: string; input_shape: number[]; kan_layers: string[] });
  compression: Record<string, unknown>;
  /** The compute mode written into every payload ('float' or 'int8'). */
  compute: (typeof COMPUTE_NAMES)[number];
  dense: { path: string; file_bytes: number; kan_bytes: number };
  /** Size of the folded dense model on XNNPACK with dynamic int8 (what users ship today); null when skipped. */
  dense_int8_xnnpack: { file_bytes: number; method: string } | null;
  max_batch: number;
  lutham: {
    path: string; file_bytes: number; kan_bytes: number; payload_bytes: number; codebook_bytes: number; codebook_segments: number; delegates: number;
    /** With --external-data: the .ptd holding the codebooks. */
    external_data?: { path: string; file_bytes: number };
    /** With --etrecord: the ETRecord of lutham.pte. */
    etrecord?: { path: string; file_bytes: number };
    /** With --methods per-head: lutham.pte's methods (backbone, head_0.., forward). */
    methods?: string[];
  };
  /** With --codebooks-from: the .ptd (relative to --out) and the key each codebook group reused. */
  codebooks_from?: { path: string; reused: Record<string, string> };
  ratio: { file: number; kan: number };
  layers: { name: string; edges: number; coefficients_per_edge: number; codebook_size: number; index_bits: number; exact: boolean; r2: number }[];
  warnings: string[];
  output_relative_l2_error: number;
  /** With --finetune-codebook: the calibration file (path relative to --out) and the relative output error on its inputs before and after. */
  finetune?: {
    calibration: { path: string; sha256: string }; calibration_inputs: number; epochs: number; lr: number; batch: number;
    tune_gains: boolean; loss: string; output_error_before: number; output_error_after: number; kept: boolean;
  };
  /** The two written files as the TypeScript .pte readers see them (lutham compare). */
  files: Comparison;
}

function positiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new LuthamError(`${name} must be a positive integer, got ${v}`);
}

/** Checks what can be checked without Python, so bad flags fail fast and clearly. */
export function validateExportOptions(o: ExportOptions): void {
  if (!o.out) throw new LuthamError("--out must name a directory, got ''");
  if (!BACKBONES.includes(o.backbone)) throw new LuthamError(`unknown backbone '${o.backbone}' (choose from ${BACKBONES.join(', ')})`);
  positiveInt('--heads', o.heads);
  positiveInt('--grid', o.grid);
  positiveInt('--order', o.order);
  positiveInt('--codebook-size', o.codebookSize);
  positiveInt('--max-batch', o.maxBatch);
  if (o.codebookSize !== undefined && o.codebookSize > MAX_CODEBOOK_SIZE) {
    throw new LuthamError(`--codebook-size must be at most ${MAX_CODEBOOK_SIZE} (${MAX_INDEX_BITS}-bit indices), got ${o.codebookSize}`);
  }
  if (o.widths) {
    if (o.widths.length < 2 || o.widths.some((w) => !Number.isInteger(w) || w < 1)) {
      throw new LuthamError(`--widths needs at least two positive integers, e.g. 2048,512,25; got ${o.widths.join(',')}`);
    }
  }
  for (const [flag, v] of [['--gain-bits', o.gainBits], ['--bias-bits', o.biasBits], ['--base-bits', o.baseBits]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 2 && v <= 8)) throw new LuthamError(`${flag} must be 2..8, got ${v}`);
  }
  if (o.int8 === false) {
    const given = [['--gain-bits', o.gainBits], ['--bias-bits', o.biasBits], ['--base-bits', o.baseBits]].filter(([, v]) => v !== undefined).map(([f]) => f);
    if (given.length) throw new LuthamError(`${given.join(', ')} cannot be used with --fp32 (everything is stored as float32)`);
  }
  if (o.codebookScope && !['heads', 'layer'].includes(o.codebookScope)) throw new LuthamError(`--codebook-scope must be heads or layer, got ${o.codebookScope}`);
  if (o.seed !== undefined && (!Number.isInteger(o.seed) || o.seed < 0)) throw new LuthamError(`--seed must be a non-negative integer, got ${o.seed}`);
  if (o.inputShape && (o.inputShape.length < 1 || o.inputShape.some((d) => !Number.isInteger(d) || d < 1))) {
    throw new LuthamError(`--input-shape must be positive integers like 1,1,28,28, got ${o.inputShape.join(',')}`);
  }
  if (o.inputShape && !o.model) throw new LuthamError('--input-shape goes with --model');
  if (o.model && (o.widths || o.grid !== undefined || o.order !== undefined)) {
    throw new LuthamError('--widths, --grid and --order describe the built model; --model brings its own');
  }
  if (o.model) modelSpec(o.model, '--model');
  if (o.codebooksFrom !== undefined && !existsSync(o.codebooksFrom)) throw new LuthamError(`--codebooks-from: no such file ${o.codebooksFrom}`);
  positiveInt('--finetune-epochs', o.finetuneEpochs);
  if (o.calibration !== undefined && !o.finetuneCodebook) throw new LuthamError('--calibration goes with --finetune-codebook');
  if (o.finetuneEpochs !== undefined && !o.finetuneCodebook) throw new LuthamError('--finetune-epochs goes with --finetune-codebook');
  if (o.finetuneCodebook && o.calibration === undefined) throw new LuthamError("--finetune-codebook needs --calibration inputs.npz (inputs shaped like the model's input)");
  if (o.finetuneCodebook && o.codebooksFrom !== undefined) throw new LuthamError('--finetune-codebook cannot be used with --codebooks-from (the shared codebooks are fixed)');
  if (o.calibration !== undefined && !existsSync(o.calibration)) throw new LuthamError(`--calibration: no such file ${o.calibration}`);
  if (o.codebooksFrom !== undefined && o.int8 === false) throw new LuthamError('--codebooks-from cannot be used with --fp32 (the given codebooks fix the storage)');
  if (o.methods !== undefined && !EXPORT_METHODS.includes(o.methods)) throw new LuthamError(`--methods must be one of ${EXPORT_METHODS.join(', ')}, got '${o.methods}'`);
  if (o.methods === 'per-head' && o.model) throw new LuthamError('--methods per-head needs the built backbone + heads model (--backbone/--heads); a --model has no heads LUTHAM can tell apart');
  if (o.compute !== undefined && !COMPUTE_NAMES.includes(o.compute)) throw new LuthamError(`--compute must be float or int8, got '${o.compute}'`);
  if (o.compute === 'int8' && o.int8 === false) throw new LuthamError('--compute int8 needs integer gains, biases and base weights (it cannot be used with --fp32)');
  if (o.compute === 'int8' && o.codebookSize !== undefined && o.codebookSize > INT8_MAX_CODEBOOK) {
    throw new LuthamError(`--compute int8 takes a codebook of at most ${INT8_MAX_CODEBOOK} words (one-byte indices), got --codebook-size ${o.codebookSize}`);
  }
}

/** `file.py:fn` -> absolute file + `:fn`; a .pt/.pt2 path -> absolute path. Checks the file exists. */
export function modelSpec(spec: string, flag: string): string {
  const m = /^(.+\.py):([A-Za-z_][A-Za-z0-9_]*)$/.exec(spec);
  const file = m ? m[1] : spec;
  if (!existsSync(file)) throw new LuthamError(`${flag}: no such file ${file}`);
  return m ? `${resolve(file)}:${m[2]}` : resolve(file);
}

export async function exportModels(o: ExportOptions, progress?: Progress): Promise<ExportReport> {
  validateExportOptions(o);
  const args = {
    backbone: o.backbone,
    heads: o.heads,
    out: resolve(o.out),
    widths: o.widths ?? null,
    grid: o.grid,
    order: o.order,
    weights: o.weights ? resolve(o.weights) : null,
    allow_partial: o.allowPartial ?? false,
    trust_pickle: o.trustPickle ?? false,
    seed: o.seed ?? 0,
    codebook_size: o.codebookSize,
    codebook_scope: o.codebookScope ?? 'heads',
    int8: o.int8 ?? true,
    gain_bits: o.gainBits ?? null,
    bias_bits: o.biasBits ?? null,
    base_bits: o.baseBits ?? null,
    model: o.model ? modelSpec(o.model, '--model') : null,
    input_shape: o.inputShape ?? null,
    max_batch: o.maxBatch ?? 1,
    int8_baseline: o.int8Baseline ?? true,
    external_data: o.externalData ?? false,
    etrecord: o.etrecord ?? false,
    codebooks_from: o.codebooksFrom ? resolve(o.codebooksFrom) : null,
    finetune_codebook: o.finetuneCodebook ?? false,
    calibration: o.calibration ? resolve(o.calibration) : null,
    finetune_epochs: o.finetuneEpochs ?? null,
    methods: o.methods ?? 'forward',
    compute: o.compute ?? 'float',
  };
  const report = (await callPython('export', args, progress)) as Omit<ExportReport, 'files'>;
  // report.json's paths are relative to --out (the file is the same wherever it is written)
  const data = report.lutham.external_data ? join(args.out, report.lutham.external_data.path) : undefined;
  return { ...report, files: await comparePte(join(args.out, report.dense.path), join(args.out, report.lutham.path), data) };
}
