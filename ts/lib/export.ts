/** Library API of `lutham export`: the CLI command and the tests both call exportModels(). */
import { resolve } from 'node:path';
import { callPython, type Progress } from '../bridge/python.js';
import { LuthamError } from '../errors.js';
import { comparePte, type Comparison } from '../pte/compare.js';

export const BACKBONES = ['resnet50', 'resnet18', 'mobilenet_v3_small', 'none'] as const;
export type Backbone = (typeof BACKBONES)[number];

export interface ExportOptions {
  backbone: Backbone;
  heads: number;
  out: string;
  widths?: number[];
  grid?: number;
  order?: number;
  weights?: string;
  /** Accept a checkpoint that lacks some of the model's tensors. */
  allowPartial?: boolean;
  seed?: number;
  codebookSize?: number;
  codebookScope?: 'heads' | 'layer';
  int8?: boolean;
  gainBits?: number;
  biasBits?: number;
  baseBits?: number;
}

export interface ExportReport {
  model: Record<string, unknown> & { head_widths: number[] };
  compression: Record<string, unknown>;
  dense: { path: string; file_bytes: number; kan_bytes: number };
  lutham: { path: string; file_bytes: number; kan_bytes: number; payload_bytes: number; codebook_bytes: number; codebook_segments: number; delegates: number };
  ratio: { file: number; kan: number };
  layers: { name: string; edges: number; coefficients_per_edge: number; codebook_size: number; index_bits: number; exact: boolean; r2: number }[];
  warnings: string[];
  output_relative_l2_error: number;
  seconds: number;
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
  if (o.codebookSize !== undefined && o.codebookSize > 65536) throw new LuthamError(`--codebook-size must be at most 65536 (16-bit indices), got ${o.codebookSize}`);
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
    seed: o.seed ?? 0,
    codebook_size: o.codebookSize,
    codebook_scope: o.codebookScope ?? 'heads',
    int8: o.int8 ?? true,
    gain_bits: o.gainBits ?? null,
    bias_bits: o.biasBits ?? null,
    base_bits: o.baseBits ?? null,
  };
  const report = (await callPython('export', args, progress)) as Omit<ExportReport, 'files'>;
  return { ...report, files: await comparePte(report.dense.path, report.lutham.path) };
}
