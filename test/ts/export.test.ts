// lutham export: the session's export as a user runs it (files, sizes, the table, progress),
// the user's own model, the library API, and bad flags and outputs refused before any work.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { shutdownPython } from '../../ts/bridge/python.js';
import { LuthamError } from '../../ts/errors.js';
import { exportModels, validateExportOptions } from '../../ts/lib/export.js';
import { assertOneLine, errorText, HANG_GUARD_MS, luthamAsync } from './helpers/cli.js';
import { runPython, ROOT } from './helpers/pte.js';
import { losslessExport, smallExport, smallReport, SMALL, SMALL_FLAGS, userModel, type SmallExport } from './helpers/session.js';

describe('export: the session export, as a user runs it', function () {
  this.timeout(HANG_GUARD_MS);
  let s: SmallExport;
  let report: Record<string, any>;
  before(async () => {
    s = await smallExport();
    report = await smallReport();
  });

  it('writes dense.pte, lutham.pte and report.json with the sizes the report states', () => {
    assert.deepEqual(readdirSync(s.out).sort(), ['dense.pte', 'lutham.pte', 'report.json']);
    for (const name of ['dense', 'lutham'] as const) {
      assert.equal(statSync(join(s.out, `${name}.pte`)).size, report[name].file_bytes);
    }
    assert.equal(report.lutham.delegates, SMALL.heads * (SMALL.widths.length - 1));
    assert.equal(report.lutham.codebook_segments, SMALL.widths.length - 1);
    assert.ok(report.ratio.kan > 1 && report.ratio.file > 1);
    assert.match(s.cli.stderr, /export lutham\.pte/); // progress went to stderr
  });

  it('prints a Dense vs SHARe-KAN table without --json', () => {
    assert.match(s.cli.stdout, /^\s+file\s+KAN part\s+ratio \(file\)/);
    assert.match(s.cli.stdout, /\nDense .*\nSHARe-KAN /);
    assert.match(s.cli.stdout, /\nlutham\.pte .*\(6 LuthamBackend delegates, 2 codebook segment\(s\)\)\n/);
  });

  it('bad input: one clear line, exit 1, earlier outputs untouched', async () => {
    const before = readFileSync(join(s.out, 'lutham.pte'));
    const cases: [string[], RegExp][] = [
      [['export', '--heads', '0', '--out', s.out], /^lutham: --heads must be a positive integer, got 0\n$/],
      [['export', '--widths', '32,x', '--out', s.out], /^lutham: --widths must be comma-separated/],
      [['export', ...SMALL_FLAGS, '--weights', join(s.out, 'missing.pt'), '--out', s.out], /^lutham: --weights: no such file/],
      [['export', '--backbone', 'vgg'], /^lutham: Invalid values:/],
      [['frobnicate'], /^lutham: Unknown argument: frobnicate/],
    ];
    const runs = await Promise.all(cases.map(([args]) => luthamAsync(args)));
    cases.forEach(([args, re], i) => {
      const r = runs[i];
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(errorText(r.stderr), re);
      assert.equal(r.stderr.includes('    at '), false, 'a stack trace leaked');
    });
    assert.deepEqual(readFileSync(join(s.out, 'lutham.pte')), before);
  });
});

describe('export: the user\'s own model (--model, code + prefixed weights)', function () {
  this.timeout(HANG_GUARD_MS);
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'lutham-export-user-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--model my_net.py:build --weights: converted layers, --json on stdout, no progress with --no-progress', async () => {
    const user = await userModel();
    const out = join(dir, 'user');
    const r = await luthamAsync(['export', '--model', user.spec, '--weights', user.weights, '--input-shape', '1,1,28,28',
      '--codebook-size', '16', '--out', out, '--json', '--no-progress']);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout); // stdout is nothing but the JSON report
    assert.deepEqual(report.model.kan_layers, ['head.layers.0', 'head.layers.1']);
    assert.deepEqual(report.model.input_shape, [1, 1, 28, 28]);
    assert.equal(report.lutham.delegates, 2);
    assert.equal(statSync(join(out, 'lutham.pte')).size, report.lutham.file_bytes);
    // report.json is Python's report; stdout adds how the TS readers see the written files.
    const { files, ...python } = report;
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')), python);
    assert.equal(files.dense.fileBytes, report.dense.file_bytes);
    assert.equal(files.lutham.fileBytes, report.lutham.file_bytes);
    assert.equal(files.lutham.luthamDelegates, 2);
    assert.ok(Math.abs(files.ratios.total - report.ratio.file) < 1e-9);
    assert.equal(r.stderr.includes('lutham: export'), false, '--no-progress still printed progress');
  });

  it('bad --model flags: one line each', async () => {
    const user = await userModel();
    const cases: [string[], RegExp][] = [
      [['export', '--model', join(dir, 'none.py:build')], /^lutham: --model: no such file .*none\.py\n$/],
      [['export', '--model', user.spec, '--input-shape', '1,x'], /^lutham: --input-shape must be comma-separated numbers/],
      [['export', '--model', user.spec, '--grid', '4'], /^lutham: --widths, --grid and --order describe the built model/],
      [['export', '--model', user.spec, '--out', join(dir, 'noshape')], /^lutham: --model .*my_net\.py:build: cannot tell the input shape of this model: pass --input-shape/m],
    ];
    const runs = await Promise.all(cases.map(([args]) => luthamAsync(args)));
    cases.forEach(([args, re], i) => {
      assert.equal(runs[i].status, 1, `${args.join(' ')}: ${runs[i].stderr}`);
      assert.match(errorText(runs[i].stderr), re);
    });
  });
});

describe('export: library API', function () {
  this.timeout(HANG_GUARD_MS);
  after(() => shutdownPython());

  it('validates options without Python', () => {
    assert.throws(() => validateExportOptions({ backbone: 'none', heads: 1, out: 'x', codebookSize: 70000 }), LuthamError);
    assert.throws(() => validateExportOptions({ backbone: 'none', heads: 1, out: 'x', gainBits: 9 }), /--gain-bits must be 2..8/);
    assert.doesNotThrow(() => validateExportOptions({ backbone: 'none', heads: 2, out: 'x', widths: [8, 4] }));
  });

  it('exportModels reports progress and the same sizes as the files', async () => {
    const { out, report, progress } = await losslessExport();
    assert.equal(report.compression.gain_bits, 32);
    assert.equal(statSync(join(out, 'lutham.pte')).size, report.lutham.file_bytes);
    assert.equal(progress.at(-1), 1);
    assert.deepEqual([...progress].sort((a, b) => a - b), progress);
  });

  it('a Python exception becomes a one-line LuthamError', async () => {
    await assert.rejects(
      exportModels({ backbone: 'resnet18', heads: 1, out: tmpdir(), widths: [100, 4] }),
      (e: Error) => e instanceof LuthamError && /must start with 512/.test(e.message) && !e.message.includes('\n'),
    );
  });
});

describe('export: refuses bad outputs and flags before any work', function () {
  this.timeout(HANG_GUARD_MS * 2);
  const TINY = ['--backbone', 'none', '--heads', '2', '--widths', '16,4', '--grid', '4', '--codebook-size', '8', '--no-progress'];
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'lutham-export-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lutham.pte being a directory fails before compressing, old files untouched', async () => {
    const out = join(dir, 'isdir');
    mkdirSync(join(out, 'lutham.pte'), { recursive: true });
    writeFileSync(join(out, 'dense.pte'), 'old dense');
    const r = await luthamAsync(['export', ...TINY, '--out', out]);
    assertOneLine(r, /--out: .*lutham\.pte exists and is not a regular file/);
    assert.equal(readFileSync(join(out, 'dense.pte'), 'utf8'), 'old dense');
    assert.deepEqual(readdirSync(out).sort(), ['dense.pte', 'lutham.pte']);
  });

  it('--heads 1e6 says how much memory it needs instead of trying', async () => {
    const r = await luthamAsync(['export', '--backbone', 'none', '--heads', '1e6', '--widths', '512,64,4', '--out', join(dir, 'huge')]);
    assertOneLine(r, /^lutham: 1000000 head\(s\) of widths 512,64,4 are [\d.,]+ GB of float32 weights; exporting them needs about [\d.,]+ GB of memory, this machine has [\d.,]+ GB$/);
    assert.equal(existsSync(join(dir, 'huge', 'dense.pte')), false);
  });

  it('a partial checkpoint is refused, naming the missing tensors', async () => {
    // head 0's first layer only: what a user saving one submodule gets.
    const ckpt = join(dir, 'partial.pt');
    await runPython(['-c', `
import sys, torch
sys.path.insert(0, ${JSON.stringify(join(ROOT, 'py_bridge'))})
from lutham.model.multihead import ModelConfig, build_model
m = build_model(ModelConfig(backbone="none", heads=2, widths=[16, 4], grid=4))
torch.save({k: v for k, v in m.state_dict().items() if k.startswith("heads.0.")}, ${JSON.stringify(ckpt)})
`]);
    const r = await luthamAsync(['export', ...TINY, '--weights', ckpt, '--out', join(dir, 'partial')]);
    assertOneLine(r, /checkpoint .*partial\.pt lacks \d+ of the model's \d+ tensors \(heads\.1\..*\); pass --allow-partial/);
  });
});
