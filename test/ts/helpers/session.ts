// The one tiny model every test file shares: exported through the CLI as a user runs it
// (`lutham export`, default flags, text output), once per mocha run, with what ExecuTorch's own
// Python deserializer reports about the two files (make_pte.py facts). The export test checks
// this very run; the reader, run, fuzz and bad-file tests read its files.
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { exportModels, type ExportReport } from '../../../ts/lib/export.js';
import { luthamAsync, type CliResult } from './cli.js';
import { runPython, ROOT, type ModelSpec, type PtePair, type PyFacts } from './pte.js';

/** No backbone, 3 heads of 64 -> 16 -> 5, K = 64. */
export const SMALL: ModelSpec = { name: 'small', backbone: 'none', heads: 3, widths: [64, 16, 5], grid: 5, codebook_size: 64 };
export const SMALL_FLAGS = ['--backbone', 'none', '--heads', String(SMALL.heads), '--widths', SMALL.widths.join(','),
  '--grid', String(SMALL.grid), '--codebook-size', String(SMALL.codebook_size)];

export interface SmallExport extends PtePair {
  /** The --out directory: dense.pte, lutham.pte, report.json. */
  out: string;
  /** How the export command ended (its stdout is the Dense vs SHARe-KAN table). */
  cli: CliResult;
}

let session: Promise<SmallExport> | null = null;

async function exportSmall(): Promise<SmallExport> {
  const dir = await mkdtemp(join(tmpdir(), 'lutham-test-session-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'out');
  const cli = await luthamAsync(['export', ...SMALL_FLAGS, '--out', out]);
  if (cli.status !== 0) throw new Error(`the session export failed (${cli.status}):\n${cli.stderr}`);
  const dense = join(out, 'dense.pte');
  const lutham = join(out, 'lutham.pte');
  const facts = JSON.parse(await runPython([join(ROOT, 'test', 'ts', 'helpers', 'make_pte.py'), JSON.stringify({ facts: [dense, lutham] })])) as Record<string, PyFacts>;
  return { out, dense, lutham, facts, cli };
}

/** The SMALL export of this mocha run (made by the first caller). */
export function smallExport(): Promise<SmallExport> {
  session ??= exportSmall();
  return session;
}

// A root hook: the export starts with the run, beside the first files' tests, instead of
// inside the first test that needs it. A failure is reported by the tests that await it.
before(() => {
  smallExport().catch(() => {});
});

/** The SMALL Dense/SHARe-KAN pair with Python's facts (the session export). */
export async function smallPtes(): Promise<PtePair> {
  return smallExport();
}

/** report.json of the session export. */
export async function smallReport(): Promise<Record<string, any>> {
  return JSON.parse(await readFile(join((await smallExport()).out, 'report.json'), 'utf8'));
}

/** A lossless SHARe-KAN export (float32, K = every edge) through the library API, once per run. */
export interface LosslessExport {
  out: string;
  report: ExportReport;
  /** The progress fractions the export reported, in order. */
  progress: number[];
}

let lossless: Promise<LosslessExport> | null = null;

export function losslessExport(): Promise<LosslessExport> {
  lossless ??= (async () => {
    const out = await mkdtemp(join(tmpdir(), 'lutham-test-lossless-'));
    process.on('exit', () => rmSync(out, { recursive: true, force: true }));
    const progress: number[] = [];
    const report = await exportModels(
      { backbone: 'none', heads: 3, out, widths: [32, 8, 4], grid: 5, codebookSize: 65536, int8: false, int8Baseline: false },
      (_stage, fraction) => progress.push(fraction),
    );
    return { out, report, progress };
  })();
  return lossless;
}

/** The user's own model: a conv+BatchNorm backbone with an efficient-kan head (test/python/kan_formats.py). */
export interface UserModel {
  /** `my_net.py:build` */
  spec: string;
  /** Its state dict saved under a `module.` prefix. */
  weights: string;
  dir: string;
}

let userModelFiles: Promise<UserModel> | null = null;

export function userModel(): Promise<UserModel> {
  userModelFiles ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lutham-test-user-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    const net = join(dir, 'my_net.py');
    await writeFile(net, [
      'import sys, torch',
      `sys.path.insert(0, ${JSON.stringify(join(ROOT, 'test', 'python'))})`,
      'from kan_formats import ConvBNKAN',
      'def build():',
      '    torch.manual_seed(0)',
      '    return ConvBNKAN(hidden=8)',
      'if __name__ == "__main__":',
      '    torch.save({"module." + k: v for k, v in build().state_dict().items()}, sys.argv[1])',
      '',
    ].join('\n'));
    const weights = join(dir, 'state.pt');
    await runPython([net, weights], dir);
    return { spec: `${net}:build`, weights, dir };
  })();
  return userModelFiles;
}

/** What "Use it in your app" exports: 2 heads of 16 -> 8 -> 4, --external-data --methods per-head. */
export const APP_FLAGS = ['--backbone', 'none', '--widths', '16,8,4', '--grid', '5', '--codebook-size', '16', '--no-int8-baseline',
  '--no-progress', '--heads', '2', '--external-data', '--methods', 'per-head'];

export interface AppExport {
  /** --out: dense.pte, lutham.pte (methods head_0, head_1, forward), lutham.ptd, report.json. */
  out: string;
  /** The export's --json report. */
  report: ExportReport;
}

let app: Promise<AppExport> | null = null;

/** The per-head, external-data export of this mocha run (external_data, methods and cpp_app tests read it). */
export function appExport(): Promise<AppExport> {
  app ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lutham-test-app-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, 'a');
    const cli = await luthamAsync(['export', ...APP_FLAGS, '--out', out, '--json']);
    if (cli.status !== 0) throw new Error(`the per-head export failed (${cli.status}):\n${cli.stderr}`);
    return { out, report: JSON.parse(cli.stdout) as ExportReport };
  })();
  return app;
}
