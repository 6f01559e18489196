// Regenerating the FlatBuffers bindings from the schemas must give the committed bytes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

import { ROOT, VENV_PYTHON } from './helpers/pte.js';

/** Generated trees, relative to the repository root (and to OUT_DIR). */
const GENERATED = ['ts/generated', 'py_bridge/lutham/payload', 'delegate/runtime/generated', 'delegate/runner/generated'];

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== '__pycache__') await walk(p);
      } else out.push(relative(dir, p));
    }
  };
  if (existsSync(dir)) await walk(dir);
  return out.sort();
}

describe('generated FlatBuffers code', function () {
  this.timeout(120_000);
  let out: string;

  before(async function () {
    if (!existsSync(VENV_PYTHON)) this.skip();
    out = await mkdtemp(join(tmpdir(), 'lutham-gen-'));
    const r = spawnSync('bash', [join(ROOT, 'scripts', 'generate-schema-code.sh')], {
      cwd: ROOT,
      env: { ...process.env, OUT_DIR: out, LUTHAM_PYTHON: VENV_PYTHON },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `generate-schema-code.sh failed:\n${r.stderr}`);
  });

  after(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  for (const tree of GENERATED) {
    it(`${tree} is byte-identical to a fresh generation`, async () => {
      const fresh = await files(join(out, tree));
      const committed = await files(join(ROOT, tree));
      assert.ok(fresh.length > 0, `the script generated nothing under ${tree}`);
      assert.deepEqual(committed, fresh, `file lists differ under ${tree} (run npm run generate)`);
      for (const f of fresh) {
        const a = await readFile(join(out, tree, f));
        const b = await readFile(join(ROOT, tree, f));
        assert.ok(a.equals(b), `${tree}/${f} differs from a fresh generation (run npm run generate; never edit generated files)`);
      }
    });
  }

  it('includes the .pte schema and the LUTHAM payload schema', async () => {
    const ts = await files(join(ROOT, 'ts/generated'));
    for (const f of ['executorch-flatbuffer/program.ts', 'executorch-flatbuffer/scalar-type.ts', 'lutham/payload/payload.ts', 'lutham/payload/codebook.ts']) {
      assert.ok(ts.includes(f), f);
    }
  });
});
