// lutham run: a .pte through ExecuTorch with LuthamBackend, as a user meets it: outputs that
// match between the Dense and a lossless SHARe-KAN file, bad files refused before ExecuTorch
// sees them, NaN/Inf inputs reported, --output written exactly where it says.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { shutdownPython } from '../../ts/bridge/python.js';
import { garbage, makeBadFiles } from './helpers/bad-files.js';
import { assertOneLine, HANG_GUARD_MS, luthamAsync, npyFloat32 } from './helpers/cli.js';
import { cleanupTemp } from './helpers/pte.js';
import { losslessExport, smallPtes, SMALL } from './helpers/session.js';
import type { PtePair } from './helpers/pte.js';

describe('run: lutham run', function () {
  this.timeout(HANG_GUARD_MS * 2);
  let pair: PtePair;
  let dir: string;
  before(async () => {
    pair = await smallPtes();
    dir = mkdtempSync(join(tmpdir(), 'lutham-run-'));
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await cleanupTemp();
    shutdownPython(); // losslessExport ran in this process when this file runs alone
  });

  it('lossless lutham.pte gives the same outputs as dense.pte through ExecuTorch', async () => {
    const { out } = await losslessExport();
    const res = await Promise.all(['dense', 'lutham'].map(async (name) => {
      const r = await luthamAsync(['run', join(out, `${name}.pte`), '--repeat', '2', '--seed', '3', '--json', '--output', join(out, `${name}.npy`)]);
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout);
    }));
    assert.deepEqual(res[0].outputs, [[1, 3, 4]]);
    assert.deepEqual(res[1].outputs, res[0].outputs);
    assert.ok(Math.abs(res[0].sum - res[1].sum) <= 1e-4 * res[0].abs_sum, `${res[0].sum} vs ${res[1].sum}`);
    assert.ok(Math.abs(res[0].abs_sum - res[1].abs_sum) <= 1e-4 * res[0].abs_sum);
    assert.ok(existsSync(join(out, 'lutham.npy')));
    const bad = await luthamAsync(['run', join(out, 'report.json')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^lutham: .*report\.json is not a \.pte file/m);
  });

  it('non-.pte files are refused before ExecuTorch sees them (no abort, no ExecuTorch log)', async () => {
    const random = join(dir, 'random.pte');
    writeFileSync(random, garbage(4096, 4));
    const flipped = join(dir, 'flipped.pte');
    const good = readFileSync(pair.lutham);
    good[5] ^= 0x01; // "ET12" -> "EU12"
    writeFileSync(flipped, good);
    const [r1, r2] = await Promise.all([luthamAsync(['run', random]), luthamAsync(['run', flipped])]);
    assertOneLine(r1, /random\.pte is not a \.pte file \(identifier/);
    assertOneLine(r2, /flipped\.pte is not a \.pte file \(identifier "EU12"/);
  });

  it('a payload ExecuTorch rejects is one line; a good run prints no ExecuTorch log', async () => {
    const bad = (await makeBadFiles(pair.lutham, pair.facts[pair.lutham])).find((b) => b.name === 'garbage-payload.pte')!;
    const [r, ok] = await Promise.all([luthamAsync(['run', bad.path, '--repeat', '1']), luthamAsync(['run', pair.lutham, '--repeat', '1'])]);
    assertOneLine(r, /^lutham: cannot load .*garbage-payload\.pte/);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stderr, '', 'ExecuTorch or cpuinfo log lines reached the user');
  });

  it('NaN/Inf inputs are reported, not a crash; --output writes exactly the path it names', async () => {
    const n = SMALL.widths[0];
    const values = Array.from({ length: n }, (_, i) => (i === 0 ? NaN : i === 1 ? Infinity : 0.1));
    const input = join(dir, 'nan.npy');
    writeFileSync(input, npyFloat32([1, n], values));
    const output = join(dir, 'result.bin'); // no .npy suffix
    const [r, text] = await Promise.all([
      luthamAsync(['run', pair.lutham, '--input', input, '--output', output, '--repeat', '1', '--json']),
      luthamAsync(['run', pair.lutham, '--input', input, '--repeat', '1']),
    ]);
    assert.equal(r.status, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.deepEqual(info.non_finite_inputs, [2]);
    assert.ok(info.non_finite_outputs > 0);
    assert.equal(info.sum, 'NaN');
    assert.equal(info.output, output);
    assert.ok(existsSync(output) && !existsSync(`${output}.npy`), '--output wrote somewhere else');
    assert.equal(readFileSync(output).subarray(0, 6).toString('latin1'), '\x93NUMPY');
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^output 0: float32 \[1, 3, 5\]\nchecksum: sum=nan abs_sum=nan\nmedian: [\d.]+ ms over 1 runs\n/);
    assert.doesNotMatch(text.stdout, /warning:/); // warnings go to stderr (issue 15.11)
    assert.match(text.stderr, /warning: input 0 has 2 NaN\/Inf value\(s\)\nwarning: \d+ output value\(s\) are NaN\/Inf\n/);
  });

  it('inspect and run on a FIFO fail at once instead of waiting for a writer', async () => {
    const fifo = join(dir, 'fifo.pte');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const [i, r] = await Promise.all([luthamAsync(['inspect', fifo]), luthamAsync(['run', fifo])]);
    assertOneLine(i, /cannot read .*fifo\.pte: not a regular file/);
    assertOneLine(r, /cannot read .*fifo\.pte: not a regular file/);
  });
});
