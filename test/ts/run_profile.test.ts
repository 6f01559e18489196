// lutham run --profile: a multi-head file exported with --etrecord, profiled by ExecuTorch's own
// ETDump and Inspector through the CLI: one LuthamBackend row per KAN layer (2 per head), named
// by its module path, whose times add up to the KAN heads' time `lutham run` prints.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { assertOneLine, HANG_GUARD_MS, luthamAsync } from './helpers/cli.js';
import { SMALL, SMALL_FLAGS } from './helpers/session.js';

describe('run: lutham run --profile', function () {
  this.timeout(HANG_GUARD_MS * 2);
  let dir: string;
  let out: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lutham-profile-'));
    out = join(dir, 'out');
    const r = await luthamAsync(['export', ...SMALL_FLAGS, '--no-int8-baseline', '--etrecord', '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /lutham\.etrecord .*ETRecord; run --profile names the layers from it/);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints one LuthamBackend row per KAN layer, adding up to the heads\' time', async () => {
    const layers = Array.from({ length: SMALL.heads }, (_, h) => [0, 1].map((l) => `heads.${h}.layers.${l}`)).flat();
    const r = await luthamAsync(['run', join(out, 'lutham.pte'), '--profile', '--repeat', '20']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(existsSync(join(out, 'lutham.etdp')), 'the ETDump is written beside the .pte');
    const rows = r.stdout.split('\n').filter((l) => / LuthamBackend /.test(l));
    assert.deepEqual(rows.map((l) => l.split(/\s+/)[0]).sort(), [...layers].sort());
    for (const row of rows) assert.match(row, /^\S+\s+LuthamBackend\s+20\s+\d+\.\d\d\s+\d+\.\d%/);
    assert.match(r.stdout, new RegExp(`LuthamBackend: ${layers.length} layers, [\\d.]+ ms median per run`));

    const etdump = join(dir, 'json.etdp');
    const j = await luthamAsync(['run', join(out, 'lutham.pte'), '--profile', '--etdump', etdump, '--repeat', '20', '--json']);
    assert.equal(j.status, 0, j.stderr);
    const res = JSON.parse(j.stdout);
    assert.equal(res.profile.etdump, etdump);
    const lutham = res.profile.rows.filter((row: { backend: string }) => row.backend === 'LuthamBackend');
    assert.equal(lutham.length, layers.length);
    // The layer events lie inside LuthamBackend::execute, which head_ms times per run.
    assert.ok(res.profile.lutham_median_ms <= res.head_ms + 1e-6 && res.profile.lutham_median_ms >= 0.5 * res.head_ms,
      `${res.profile.lutham_median_ms} vs ${res.head_ms}`);
  });

  it('--etdump and --etrecord need --profile; a missing --etrecord is one line', async () => {
    const [a, b] = await Promise.all([
      luthamAsync(['run', join(out, 'lutham.pte'), '--etdump', join(dir, 'x.etdp')]),
      luthamAsync(['run', join(out, 'lutham.pte'), '--profile', '--etrecord', join(dir, 'none.etrecord')]),
    ]);
    assertOneLine(a, /--etdump and --etrecord need --profile/);
    assertOneLine(b, /--etrecord: no such file .*none\.etrecord/);
  });
});
