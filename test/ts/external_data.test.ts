import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { LuthamError } from '../../ts/errors.js';
import { inspectPte } from '../../ts/pte/inspect.js';
import { readPtd } from '../../ts/pte/ptd.js';
import { luthamAsync } from './helpers/cli.js';
import { appExport } from './helpers/session.js';

const SMALL = ['--backbone', 'none', '--widths', '16,8,4', '--grid', '5', '--codebook-size', '16', '--no-int8-baseline', '--no-progress'];

describe('external data: export --external-data, --codebooks-from, run --data, inspect a .ptd', function () {
  this.timeout(600_000); // three small exports through the CLI
  let dir: string;
  let a: string; // 2 heads, codebooks in a/lutham.ptd, methods head_0, head_1, forward (the session's app export)
  let b: string; // 3 other heads reusing a's codebooks, all in b/lutham.pte (over a stale .ptd and ETRecord)
  let other: string; // another model's .ptd

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lutham-ptd-'));
    a = (await appExport()).out;
    b = join(dir, 'b');
    other = join(dir, 'other');
    // What an earlier `--external-data --etrecord` export into b left: the new set has neither.
    await mkdir(b);
    await copyFile(join(a, 'lutham.ptd'), join(b, 'lutham.ptd'));
    await writeFile(join(b, 'lutham.etrecord'), 'an ETRecord of another program');
    const [second, third] = await Promise.all([
      luthamAsync(['export', ...SMALL, '--heads', '3', '--seed', '1', '--codebooks-from', join(a, 'lutham.ptd'), '--out', b, '--json']),
      luthamAsync(['export', ...SMALL, '--heads', '1', '--seed', '7', '--external-data', '--out', other]),
    ]);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(third.status, 0, third.stderr);
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('export --json names the .ptd and counts it in the file ratio', async () => {
    const report = JSON.parse(await readFile(join(a, 'report.json'), 'utf8'));
    const ptd = await readPtd(join(a, 'lutham.ptd'));
    assert.deepEqual(report.lutham.external_data, { path: 'lutham.ptd', file_bytes: ptd.fileBytes });
    assert.equal(ptd.entries.filter((e) => e.codebook).length, 2);
    const dense = report.dense.file_bytes;
    assert.ok(Math.abs(report.ratio.file - dense / (report.lutham.file_bytes + ptd.fileBytes)) < 1e-9);
  });

  it('inspect reads a .ptd: every codebook, verified against its key', async () => {
    const r = await luthamAsync(['inspect', join(a, 'lutham.ptd'), '--verify']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /FT01 v\d+ \(ExecuTorch external data\)/);
    assert.equal((r.stdout.match(/lutham\/codebook\/sha256-[0-9a-f]{64} +\d+ +\d+ +codebook 16x8 int8/g) ?? []).length, 2);
    assert.match(r.stdout, /Verified: 2 codebooks .*all good/);
  });

  it('inspect of the .pte lists the keys it expects from a .ptd, and --data checks them', async () => {
    const alone = await inspectPte(join(a, 'lutham.pte'));
    assert.equal(alone.externalKeys.length, 2);
    assert.deepEqual(alone.problems, []);
    assert.equal(alone.namedData.length, 0);
    const ptd = await readPtd(join(a, 'lutham.ptd'));
    assert.deepEqual([...alone.externalKeys].sort(), ptd.entries.map((e) => e.key).sort());
    const good = await inspectPte(join(a, 'lutham.pte'), { data: join(a, 'lutham.ptd') });
    assert.deepEqual(good.problems, []);
    const wrong = await inspectPte(join(a, 'lutham.pte'), { data: join(other, 'lutham.ptd') });
    assert.ok(wrong.problems.length > 0 && wrong.problems.every((p) => /codebook lutham\/codebook\/sha256-[0-9a-f]{64} is not in .*other\/lutham\.ptd/.test(p)), wrong.problems.join('\n'));
    const text = await luthamAsync(['inspect', join(a, 'lutham.pte')]);
    assert.match(text.stdout, /External data: 2 codebooks come from a \.ptd \(run with --data FILE/);
  });

  it('run --data gives the outputs of the all-in-one program that reuses the same codebooks', async () => {
    // b reused a's codebooks, so b's .pte holds exactly codebooks of a's .ptd
    const breport = JSON.parse(await readFile(join(b, 'report.json'), 'utf8'));
    const keys = (await readPtd(join(a, 'lutham.ptd'))).entries.map((e) => e.key);
    assert.ok(Object.values(breport.codebooks_from.reused).every((k) => keys.includes(k as string)));
    const withData = await luthamAsync(['run', join(a, 'lutham.pte'), '--data', join(a, 'lutham.ptd'), '--json', '--repeat', '1']);
    assert.equal(withData.status, 0, withData.stderr);
    assert.deepEqual(JSON.parse(withData.stdout).outputs, [[1, 2, 4]]);
  });

  it('an export without --external-data removes the lutham.ptd (and lutham.etrecord) an earlier export left', async () => {
    assert.deepEqual((await readdir(b)).sort(), ['dense.pte', 'lutham.pte', 'report.json']);
  });

  it('run without the .ptd, or with another one, fails with one line', async () => {
    const missing = await luthamAsync(['run', join(a, 'lutham.pte'), '--repeat', '1']);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr.trim(), /^lutham: cannot load .*lutham\.pte: it needs codebook lutham\/codebook\/sha256-[0-9a-f]{64} from a \.ptd file .*pass --data FILE$/);
    const wrong = await luthamAsync(['run', join(a, 'lutham.pte'), '--data', join(other, 'lutham.ptd'), '--repeat', '1']);
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr.trim(), /^lutham: cannot load .*: .*other\/lutham\.ptd does not hold codebook .*exported with\)$/);
  });

  it('a corrupted .ptd is a one-line error, not a crash', async () => {
    const bytes = new Uint8Array(await readFile(join(a, 'lutham.ptd')));
    const view = new DataView(bytes.buffer);
    view.setBigUint64(32, 1n << 40n, true); // segment_base_offset far beyond the file
    const bad = join(dir, 'bad.ptd');
    await writeFile(bad, bytes);
    await assert.rejects(readPtd(bad), (e: unknown) => e instanceof LuthamError && /is corrupt: segment_base_offset \d+ is beyond/.test((e as Error).message));
    const r = await luthamAsync(['inspect', bad]);
    assert.equal(r.status, 1);
    assert.match(r.stderr.trim(), /^lutham: .*bad\.ptd is corrupt: /);
  });
});
