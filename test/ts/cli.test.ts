import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../ts/paths.js';
import { exportModels, validateExportOptions } from '../../ts/lib/export.js';
import { shutdownPython } from '../../ts/bridge/python.js';
import { LuthamError } from '../../ts/errors.js';

// The CLI as a user runs it: through tsx on the sources, so the tests need no build step.
function lutham(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'ts', 'cli.ts'), ...args], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 600_000,
  });
}

const SMALL = ['--backbone', 'none', '--heads', '3', '--widths', '32,8,4', '--grid', '5', '--codebook-size', '16'];

describe('lutham CLI', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'lutham-cli-')); });
  after(() => { rmSync(dir, { recursive: true, force: true }); shutdownPython(); });

  it('--help lists export and does not start Python', () => {
    // An interpreter that leaves a mark if anything runs it.
    const marker = join(dir, 'python-started');
    const fake = join(dir, 'fake-python');
    writeFileSync(fake, `#!/bin/sh\ntouch ${marker}\nexit 1\n`);
    chmodSync(fake, 0o755);
    const r = lutham(['--help'], { LUTHAM_PYTHON: fake });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /lutham export/);
    const r2 = lutham(['export', '--help'], { LUTHAM_PYTHON: fake });
    assert.equal(r2.status, 0);
    assert.match(r2.stdout, /--codebook-size/);
    assert.equal(existsSync(marker), false, 'Python was started for --help');
  });

  it('export runs end to end: files, sizes and a JSON report on stdout', () => {
    const out = join(dir, 'out');
    const r = lutham(['export', ...SMALL, '--out', out, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout); // stdout is nothing but the JSON report
    for (const name of ['dense', 'lutham'] as const) {
      assert.equal(statSync(join(out, `${name}.pte`)).size, report[name].file_bytes);
    }
    // report.json is Python's report; stdout adds how the TS readers see the written files.
    const { files, ...python } = report;
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')), python);
    assert.equal(files.dense.fileBytes, report.dense.file_bytes);
    assert.equal(files.lutham.fileBytes, report.lutham.file_bytes);
    assert.equal(files.lutham.codebookSegments, 2);
    assert.ok(Math.abs(files.ratios.total - report.ratio.file) < 1e-9);
    assert.equal(report.lutham.delegates, 6);
    assert.ok(report.ratio.kan > 1 && report.ratio.file > 1);
    assert.match(r.stderr, /export lutham\.pte/); // progress went to stderr
  });

  it('prints a Dense vs SHARe-KAN table without --json', () => {
    const r = lutham(['export', ...SMALL, '--out', join(dir, 'table'), '--no-progress']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\s+file\s+KAN part\s+ratio \(file\)/);
    assert.match(r.stdout, /\nDense .*\nSHARe-KAN /);
    assert.equal(r.stderr.includes('lutham: export'), false, '--no-progress still printed progress');
  });

  it('bad input: one clear line, exit 1, earlier outputs untouched', () => {
    const out = join(dir, 'out');
    const before = readFileSync(join(out, 'lutham.pte'));
    const cases: [string[], RegExp][] = [
      [['export', '--heads', '0', '--out', out], /^lutham: --heads must be a positive integer, got 0\n$/],
      [['export', '--widths', '32,x', '--out', out], /^lutham: --widths must be comma-separated/],
      [['export', ...SMALL, '--weights', join(dir, 'missing.pt'), '--out', out], /^lutham: --weights: no such file/],
      [['export', '--backbone', 'vgg'], /^lutham: Invalid values:/],
      [['frobnicate'], /^lutham: Unknown argument: frobnicate/],
    ];
    for (const [args, re] of cases) {
      const r = lutham(args);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr.replace(/^W\d{4} .*\n/gm, '').replace(/^lutham: (build|starting).*\n/gm, ''), re);
      assert.equal(r.stderr.includes('    at '), false, 'a stack trace leaked');
    }
    assert.deepEqual(readFileSync(join(out, 'lutham.pte')), before);
  });

  it('run: lossless lutham.pte gives the same outputs as dense.pte through ExecuTorch', () => {
    const out = join(dir, 'lossless');
    const e = lutham(['export', ...SMALL.slice(0, -2), '--codebook-size', '65536', '--fp32', '--out', out, '--no-progress']);
    assert.equal(e.status, 0, e.stderr);
    const res = ['dense', 'lutham'].map((name) => {
      const r = lutham(['run', join(out, `${name}.pte`), '--repeat', '2', '--seed', '3', '--json', '--output', join(out, `${name}.npy`)]);
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout);
    });
    assert.deepEqual(res[0].outputs, [[1, 3, 4]]);
    assert.deepEqual(res[1].outputs, res[0].outputs);
    assert.ok(Math.abs(res[0].sum - res[1].sum) <= 1e-4 * res[0].abs_sum, `${res[0].sum} vs ${res[1].sum}`);
    assert.ok(Math.abs(res[0].abs_sum - res[1].abs_sum) <= 1e-4 * res[0].abs_sum);
    assert.ok(existsSync(join(out, 'lutham.npy')));
    const bad = lutham(['run', join(out, 'report.json')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^lutham: .*report\.json is not a \.pte file/m);
  });

  it('export --model and eval --checkpoint take the user\'s own model (code + prefixed weights)', () => {
    // A conv+BatchNorm backbone with an efficient-kan head (test/python/kan_formats.py), and its
    // state dict saved under a `module.` prefix.
    const net = join(dir, 'my_net.py');
    writeFileSync(net, [
      'import sys, torch',
      `sys.path.insert(0, ${JSON.stringify(join(PROJECT_ROOT, 'test', 'python'))})`,
      'from kan_formats import ConvBNKAN',
      'def build():',
      '    torch.manual_seed(0)',
      '    return ConvBNKAN(hidden=8)',
      'if __name__ == "__main__":',
      '    torch.save({"module." + k: v for k, v in build().state_dict().items()}, sys.argv[1])',
      '',
    ].join('\n'));
    const weights = join(dir, 'state.pt');
    const py = process.env.LUTHAM_PYTHON ?? join(PROJECT_ROOT, '.venv', 'bin', 'python');
    const save = spawnSync(py, [net, weights], { encoding: 'utf8' });
    assert.equal(save.status, 0, save.stderr);
    const out = join(dir, 'user');
    const r = lutham(['export', '--model', `${net}:build`, '--weights', weights, '--input-shape', '1,1,28,28',
      '--codebook-size', '16', '--out', out, '--json', '--no-progress']);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.deepEqual(report.model.kan_layers, ['head.layers.0', 'head.layers.1']);
    assert.deepEqual(report.model.input_shape, [1, 1, 28, 28]);
    assert.equal(report.lutham.delegates, 2);
    assert.equal(statSync(join(out, 'lutham.pte')).size, report.lutham.file_bytes);

    const e = lutham(['eval', '--checkpoint', `${net}:build`, '--weights', weights, '--subset', '40', '--engine', 'eager',
      '--ks', '8', '--sparsities', '0', '--uniform-bits', '8', '--codebook-size', '8', '--json', '--no-progress']);
    assert.equal(e.status, 0, e.stderr);
    const results = JSON.parse(e.stdout);
    assert.equal(results.models[0].edges, 4 * 7 * 7 * 8 + 8 * 10);
    assert.deepEqual(results.models[0].table1.map((row: { method: string }) => row.method), ['Dense', 'SHARe-KAN fp32', 'SHARe-KAN int']);
    assert.ok(results.models[0].table1.every((row: { accuracy: number }) => row.accuracy >= 0 && row.accuracy <= 1));

    const cases: [string[], RegExp][] = [
      [['export', '--model', join(dir, 'none.py:build')], /^lutham: --model: no such file .*none\.py\n$/],
      [['export', '--model', `${net}:build`, '--input-shape', '1,x'], /^lutham: --input-shape must be comma-separated numbers/],
      [['export', '--model', `${net}:build`, '--grid', '4'], /^lutham: --widths, --grid and --order describe the built model/],
      [['export', '--model', `${net}:build`, '--out', join(dir, 'noshape')], /^lutham: --model .*my_net\.py:build: cannot tell the input shape of this model: pass --input-shape/m],
    ];
    for (const [args, re] of cases) {
      const b = lutham(args);
      assert.equal(b.status, 1, `${args.join(' ')}: ${b.stderr}`);
      assert.match(b.stderr.replace(/^W\d{4} .*\n/gm, '').replace(/^lutham: (build|starting).*\n/gm, ''), re);
    }
  });

  it('a missing Python environment is a clear error', () => {
    const r = lutham(['export', ...SMALL, '--out', join(dir, 'nopy')], { LUTHAM_PYTHON: join(dir, 'no-such-python') });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^lutham: LUTHAM_PYTHON=.* is not an executable Python interpreter\n$/);
  });
});

describe('export library API', () => {
  after(() => shutdownPython());

  it('validates options without Python', () => {
    assert.throws(() => validateExportOptions({ backbone: 'none', heads: 1, out: 'x', codebookSize: 70000 }), LuthamError);
    assert.throws(() => validateExportOptions({ backbone: 'none', heads: 1, out: 'x', gainBits: 9 }), /--gain-bits must be 2..8/);
    assert.doesNotThrow(() => validateExportOptions({ backbone: 'none', heads: 2, out: 'x', widths: [8, 4] }));
  });

  it('exportModels reports progress and the same sizes as the files', async () => {
    const out = mkdtempSync(join(tmpdir(), 'lutham-api-'));
    const seen: number[] = [];
    const report = await exportModels(
      { backbone: 'none', heads: 2, out, widths: [16, 4], grid: 4, codebookSize: 8, int8: false },
      (_stage, fraction) => seen.push(fraction),
    );
    assert.equal(report.compression.gain_bits, 32);
    assert.equal(statSync(join(out, 'lutham.pte')).size, report.lutham.file_bytes);
    assert.equal(seen.at(-1), 1);
    assert.deepEqual([...seen].sort((a, b) => a - b), seen);
    rmSync(out, { recursive: true, force: true });
  });

  it('a Python exception becomes a one-line LuthamError', async () => {
    await assert.rejects(
      exportModels({ backbone: 'resnet18', heads: 1, out: tmpdir(), widths: [100, 4] }),
      (e: Error) => e instanceof LuthamError && /must start with 512/.test(e.message) && !e.message.includes('\n'),
    );
  });
});
