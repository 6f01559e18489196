/** Library API of `lutham run`: a .pte through the ExecuTorch runtime with LuthamBackend loaded. */
import { resolve } from 'node:path';
import { callPython } from '../bridge/python.js';
import { LuthamError } from '../errors.js';

export interface RunOptions {
  model: string;
  inputs?: string[];
  output?: string;
  repeat?: number;
  seed?: number;
}

export interface RunResult {
  model: string;
  outputs: number[][];
  dtypes: string[];
  sum: number;
  abs_sum: number;
  median_ms: number;
  repeat: number;
  output: string | null;
  /** Median ms inside LuthamBackend (the KAN heads) and of the rest (backbone + glue); null when not measurable. */
  head_ms: number | null;
  backbone_ms: number | null;
  /** How the split was measured, or why it is unavailable. */
  split: string;
  text: string;
}

export async function runProgram(o: RunOptions): Promise<RunResult> {
  if (o.repeat !== undefined && (!Number.isInteger(o.repeat) || o.repeat < 1)) throw new LuthamError(`--repeat must be a positive integer, got ${o.repeat}`);
  return (await callPython('run', {
    model: resolve(o.model),
    inputs: (o.inputs ?? []).map((p) => resolve(p)),
    output: o.output ? resolve(o.output) : null,
    repeat: o.repeat ?? 10,
    seed: o.seed ?? 0,
  })) as RunResult;
}
