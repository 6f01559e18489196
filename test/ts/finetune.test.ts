// lutham export --finetune-codebook --calibration: the flags through the CLI, the before/after
// output error in the text and report.json, byte-identical files twice, and bad calibration
// files refused with one line before any work.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { assertOneLine, HANG_GUARD_MS, luthamAsync } from './helpers/cli.js';
import { runPython } from './helpers/pte.js';

const TINY = ['export', '--backbone', 'none', '--heads', '2', '--widths', '16,8,4', '--grid', '4', '--codebook-size', '8',
  '--no-int8-baseline', '--no-progress'];

describe('export --finetune-codebook --calibration', function () {
  this.timeout(HANG_GUARD_MS * 2);
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lutham-finetune-'));
    // Real .npz files made by numpy: good inputs and the bad files a user might pass.
    await runPython(['-c', `
import numpy as np
d = ${JSON.stringify(dir)}
rng = np.random.default_rng(0)
np.savez(d + "/calib.npz", x=(0.5 * rng.standard_normal((200, 16))).astype(np.float32))
np.savez(d + "/shape.npz", x=np.zeros((10, 15), np.float32))
np.savez(d + "/ints.npz", x=np.zeros((10, 16), np.int32))
np.savez(d + "/empty.npz")
`]);
    writeFileSync(join(dir, 'text.npz'), 'not a zip archive');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints and reports the output error before and after, and writes the same files twice', async () => {
    const flags = ['--finetune-codebook', '--calibration', join(dir, 'calib.npz'), '--finetune-epochs', '3'];
    const [a, b] = await Promise.all([
      luthamAsync([...TINY, ...flags, '--out', join(dir, 'a')]),
      luthamAsync([...TINY, ...flags, '--out', join(dir, 'b'), '--json']),
    ]);
    assert.equal(a.status, 0, a.stderr);
    assert.equal(b.status, 0, b.stderr);
    const line = /\nfine-tuned codebooks and gains on 200 calibration inputs of .*calib\.npz \(3 epochs\): output error (\S+) -> (\S+)\n?/.exec(a.stdout);
    assert.ok(line, a.stdout);
    const report = JSON.parse(readFileSync(join(dir, 'a', 'report.json'), 'utf8'));
    const ft = report.finetune;
    assert.equal(ft.calibration.path, '../calib.npz');
    assert.equal(ft.calibration_inputs, 200);
    assert.ok(ft.kept && ft.output_error_after < ft.output_error_before, JSON.stringify(ft));
    assert.equal(line[1], ft.output_error_before.toExponential(2));
    assert.equal(line[2], ft.output_error_after.toExponential(2));
    assert.deepEqual(JSON.parse(b.stdout).finetune, ft);
    for (const name of ['dense.pte', 'lutham.pte', 'report.json']) {
      assert.ok(readFileSync(join(dir, 'a', name)).equals(readFileSync(join(dir, 'b', name))), `${name} differs between two runs`);
    }
  });

  it('bad flags and calibration files: one line, exit 1, nothing written', async () => {
    const calib = (name: string) => ['--finetune-codebook', '--calibration', join(dir, name)];
    const cases: [string[], RegExp][] = [
      [calib('missing.npz'), /^lutham: --calibration: no such file .*missing\.npz$/],
      [['--calibration', join(dir, 'calib.npz')], /^lutham: --calibration goes with --finetune-codebook$/],
      [['--finetune-codebook'], /^lutham: --finetune-codebook needs --calibration/],
      [[...calib('calib.npz'), '--finetune-epochs', '0'], /^lutham: --finetune-epochs must be a positive integer, got 0$/],
      [calib('shape.npz'), /^lutham: --calibration: array 'x' has shape \(10, 15\); the model takes \(N, 16\)$/],
      [calib('ints.npz'), /^lutham: --calibration: array 'x' is int32; the inputs must be floating point, shaped \(N, 16\)$/],
      [calib('empty.npz'), /^lutham: --calibration: .*empty\.npz holds no arrays; it needs one array of inputs shaped \(N, 16\)$/],
      [calib('text.npz'), /^lutham: --calibration: .*text\.npz is not a \.npz file/],
    ];
    const runs = await Promise.all(cases.map(([args], i) => luthamAsync([...TINY, ...args, '--out', join(dir, `bad${i}`)])));
    cases.forEach(([args, re], i) => {
      assertOneLine(runs[i], re);
      assert.equal(existsSync(join(dir, `bad${i}`, 'lutham.pte')), false, args.join(' '));
    });
  });
});
