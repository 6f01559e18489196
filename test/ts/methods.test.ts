// export --methods per-head as a user meets it: one lutham.pte with head_0, head_1 and forward
// (the session's app export: --backbone none, so no backbone method), what inspect says about
// its methods, run --method on one head, and the one-line errors.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { inspectPte } from '../../ts/pte/inspect.js';
import { luthamAsync, npyFloat32 } from './helpers/cli.js';
import { appExport } from './helpers/session.js';

/** The float32 values of a little-endian .npy (version 1 header). */
function npyValues(bytes: Buffer): Float32Array {
  const data = bytes.subarray(10 + bytes.readUInt16LE(8));
  return new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
}

const hex = (a: Float32Array) => Buffer.from(a.buffer).toString('hex');

describe('methods: export --methods per-head, inspect, run --method', function () {
  this.timeout(600_000);
  let out: string;
  let pte: string;
  let ptd: string;
  let dir: string;

  before(async () => {
    out = (await appExport()).out;
    pte = join(out, 'lutham.pte');
    ptd = join(out, 'lutham.ptd');
    dir = await mkdtemp(join(tmpdir(), 'lutham-methods-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('export lists the methods in report.json; each layer and codebook is stored once', async () => {
    const { report } = await appExport();
    assert.deepEqual(report.lutham.methods, ['head_0', 'head_1', 'forward']);
    assert.deepEqual(JSON.parse(await readFile(join(out, 'report.json'), 'utf8')).lutham.methods, report.lutham.methods);
    const r = await inspectPte(pte);
    // 4 layers, each a segment used by forward and by its head's method; the 2 codebooks in the .ptd
    const delegateSegments = r.segments.filter((s) => s.uses.some((u) => u.startsWith('delegate ')));
    assert.equal(delegateSegments.length, 4);
    for (const s of delegateSegments) {
      assert.equal(s.uses.length, 2, s.uses.join('; '));
      assert.match(s.uses.join('; '), /^delegate forward#\d; delegate head_\d#\d$/);
    }
    assert.equal(r.externalKeys.length, 2);
    assert.equal(report.lutham.payload_bytes, delegateSegments.reduce((a, s) => a + s.bytes, 0));
  });

  it('inspect lists every method with its shapes and delegates, in text and --json', async () => {
    const json = await luthamAsync(['inspect', pte, '--json']);
    assert.equal(json.status, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout).methods, [
      { name: 'forward', inputs: [[1, 16]], outputs: [[1, 2, 4]], delegates: 4, luthamDelegates: 4 },
      { name: 'head_0', inputs: [[1, 16]], outputs: [[1, 4]], delegates: 2, luthamDelegates: 2 },
      { name: 'head_1', inputs: [[1, 16]], outputs: [[1, 4]], delegates: 2, luthamDelegates: 2 },
    ]);
    const text = await luthamAsync(['inspect', pte]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /Methods \(3\):\n +method +inputs +outputs +delegates +LuthamBackend\n[ -]+\n +forward +\[1, 16\] +\[1, 2, 4\] +4 +4\n +head_0 +\[1, 16\] +\[1, 4\] +2 +2\n +head_1 +\[1, 16\] +\[1, 4\] +2 +2\n/);
  });

  it('run --method head_1 gives forward\'s second head bit for bit', async () => {
    const x = Array.from({ length: 16 }, (_, i) => Math.cos(i * 0.9) * 1.2);
    await writeFile(join(dir, 'features.npy'), npyFloat32([1, 16], x));
    const [head, all] = await Promise.all([
      luthamAsync(['run', pte, '--data', ptd, '--method', 'head_1', '--input', join(dir, 'features.npy'), '--output', join(dir, 'h.npy'), '--repeat', '2']),
      luthamAsync(['run', pte, '--data', ptd, '--input', join(dir, 'features.npy'), '--output', join(dir, 'all.npy'), '--repeat', '1', '--json']),
    ]);
    assert.equal(head.status, 0, head.stderr);
    assert.equal(all.status, 0, all.stderr);
    assert.match(head.stdout, /^method: head_1\noutput 0: float32 \[1, 4\]\n/);
    assert.match(head.stdout.trimEnd(), /\n {2}outside LuthamBackend: [\d.]+ ms, KAN heads \(LuthamBackend\): [\d.]+ ms$/);
    assert.equal(JSON.parse(all.stdout).method, 'forward');
    const forward = npyValues(await readFile(join(dir, 'all.npy')));
    assert.equal(hex(npyValues(await readFile(join(dir, 'h.npy')))), hex(forward.slice(4, 8)));
  });

  it('an unknown method or an input of another shape is one line, exit 1', async () => {
    await writeFile(join(dir, 'hidden.npy'), npyFloat32([1, 8], Array(8).fill(0.5)));
    const [unknown, shape] = await Promise.all([
      luthamAsync(['run', pte, '--data', ptd, '--method', 'backbone']),
      luthamAsync(['run', pte, '--data', ptd, '--method', 'head_0', '--input', join(dir, 'hidden.npy')]),
    ]);
    assert.equal(unknown.status, 1);
    assert.equal(unknown.stderr.trim(), `lutham: ${pte} has no method 'backbone' (it has: forward, head_0, head_1)`);
    assert.equal(shape.status, 1);
    assert.match(shape.stderr.trim(), /^lutham: .*hidden\.npy has shape \(1, 8\), input 0 needs \(1, 16\) \(method head_0\)$/);
  });

  it('export refuses --methods per-head for a --model and an unknown --methods, before any work', async () => {
    await writeFile(join(dir, 'net.py'), 'def build():\n    raise SystemExit("never called")\n');
    const refused = await luthamAsync(['export', '--model', `${join(dir, 'net.py')}:build`, '--methods', 'per-head', '--out', join(dir, 'x')]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr.trim(), /^lutham: --methods per-head needs the built backbone \+ heads model \(--backbone\/--heads\); a --model has no heads LUTHAM can tell apart$/);
    const unknown = await luthamAsync(['export', '--methods', 'heads', '--out', join(dir, 'x')]);
    assert.equal(unknown.status, 1);
    assert.equal(unknown.stderr.trim(), 'lutham: Invalid values: Argument: methods, Given: "heads", Choices: "forward", "per-head"');
  });
});
