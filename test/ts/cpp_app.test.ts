// examples/cpp_app as a user builds it: CMake with find_package(executorch) and
// find_package(lutham_backend) against the installed package (scripts/build-delegate.sh writes
// build/delegate/install), ExecuTorch's Module running the session's lutham.pte; the outputs
// bit for bit those of `lutham run` on the same input, on x86-64 and cross-built for aarch64
// under qemu; LuthamBackend's num_threads runtime spec taking effect over LUTHAM_THREADS.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { HANG_GUARD_MS, luthamAsync, npyFloat32 } from './helpers/cli.js';
import { ROOT, VENV_PYTHON } from './helpers/pte.js';
import { appExport, smallPtes, SMALL } from './helpers/session.js';

const CMAKE = join(ROOT, '.venv', 'bin', 'cmake');
const QEMU_SYSROOT = '/usr/aarch64-linux-gnu';

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: HANG_GUARD_MS });
  assert.ok(!r.error, `${cmd}: ${r.error}`);
  return r;
}

function onPath(tool: string): boolean {
  return sh('sh', ['-c', `command -v ${tool}`]).status === 0;
}

/** Configures and builds examples/cpp_app in `dir`; returns the program's path. */
function buildApp(dir: string, executorchDir: string, packageDir: string, extra: string[] = []): string {
  const cfg = sh(CMAKE, ['-S', join(ROOT, 'examples', 'cpp_app'), '-B', dir, `-Dexecutorch_DIR=${executorchDir}`,
    `-Dlutham_backend_DIR=${packageDir}`, ...extra]);
  assert.equal(cfg.status, 0, cfg.stdout + cfg.stderr);
  const build = sh(CMAKE, ['--build', dir, '-j', '2']);
  assert.equal(build.status, 0, build.stdout + build.stderr);
  return join(dir, 'lutham_app');
}

/** lutham_app's printout: the first output's float32 values and the thread count the backend reports. */
function parseApp(stdout: string): { values: Float32Array; threads: number } {
  const lines = stdout.trim().split('\n');
  assert.match(lines[0], /^output 0: float32 \[/, stdout);
  const threads = /^LuthamBackend threads: (\d+)$/m.exec(stdout);
  assert.ok(threads, stdout);
  return { values: new Float32Array(lines[1].split(' ').map(Number)), threads: Number(threads[1]) };
}

function npyValues(path: string): Float32Array {
  const b = readFileSync(path);
  const data = b.subarray(10 + b.readUInt16LE(8));
  return new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
}

const bits = (a: Float32Array) => Buffer.from(a.buffer).toString('hex');

describe('cpp_app: an ExecuTorch application linking lutham::backend through CMake', function () {
  this.timeout(HANG_GUARD_MS * 2);
  let dir: string;
  let pte: string;
  let xBin: string;
  let reference: Float32Array;
  let appOut: string; // the per-head export (--external-data --methods per-head)
  let headReference: Float32Array; // lutham run --method head_1 on it
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lutham-cpp-app-'));
    pte = (await smallPtes()).lutham;
    const x = Array.from({ length: SMALL.widths[0] }, (_, i) => Math.sin(i * 0.7) * 1.4);
    writeFileSync(join(dir, 'x.npy'), npyFloat32([1, SMALL.widths[0]], x));
    xBin = join(dir, 'x.bin');
    writeFileSync(xBin, Buffer.from(new Float32Array(x).buffer));
    const features = Array.from({ length: 16 }, (_, i) => Math.cos(i * 0.4)); // the app export's input width
    writeFileSync(join(dir, 'x16.npy'), npyFloat32([1, 16], features));
    writeFileSync(join(dir, 'x16.bin'), Buffer.from(new Float32Array(features).buffer));
    const run = await luthamAsync(['run', pte, '--input', join(dir, 'x.npy'), '--output', join(dir, 'y.npy'), '--repeat', '1']);
    assert.equal(run.status, 0, run.stderr);
    reference = npyValues(join(dir, 'y.npy'));
    appOut = (await appExport()).out;
    const head = await luthamAsync(['run', join(appOut, 'lutham.pte'), '--data', join(appOut, 'lutham.ptd'), '--method', 'head_1',
      '--input', join(dir, 'x16.npy'), '--output', join(dir, 'h1.npy'), '--repeat', '1']);
    assert.equal(head.status, 0, head.stderr);
    headReference = npyValues(join(dir, 'h1.npy'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('x86-64: builds against the installed package, matches lutham run bit for bit, takes num_threads', function () {
    const pkg = join(ROOT, 'build', 'delegate', 'install', 'lib', 'cmake', 'lutham_backend');
    assert.ok(existsSync(pkg), `${pkg} missing: run scripts/build-delegate.sh`);
    const et = sh(VENV_PYTHON, ['-c', 'import executorch; print(list(executorch.__path__)[0])']).stdout.trim();
    const app = buildApp(join(dir, 'x86'), join(et, 'lib', 'cmake', 'executorch'), pkg);
    const runApp = (args: string[]) => {
      const r = sh(app, ['--model', pte, '--input', xBin, ...args], { LUTHAM_THREADS: '1' });
      assert.equal(r.status, 0, r.stderr);
      return parseApp(r.stdout);
    };
    const fallback = runApp([]);
    assert.equal(fallback.values.length, SMALL.heads * SMALL.widths[SMALL.widths.length - 1]);
    assert.equal(bits(fallback.values), bits(reference));
    assert.equal(fallback.threads, 1); // LUTHAM_THREADS=1, no runtime spec
    for (const n of [2, 3]) {
      const r = runApp(['--threads', String(n)]);
      assert.equal(r.threads, n); // the runtime spec wins over LUTHAM_THREADS
      assert.equal(bits(r.values), bits(reference)); // and changes no bit
    }
    const bad = sh(app, ['--model', pte, '--threads', '0']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /LuthamBackend: runtime spec num_threads must be an int from 1 to 256, got 0/);
    const noMethod = sh(app, ['--model', pte, '--method', 'head_9']);
    assert.equal(noMethod.status, 2);
    assert.match(noMethod.stderr, /lutham_app: the program has no method 'head_9' \(it has: forward\)/);
    // One head of a per-head program with its .ptd: `lutham run --method head_1`'s bits.
    const head = sh(app, ['--model', join(appOut, 'lutham.pte'), '--data', join(appOut, 'lutham.ptd'), '--method', 'head_1',
      '--input', join(dir, 'x16.bin')]);
    assert.equal(head.status, 0, head.stderr);
    const got = parseApp(head.stdout);
    assert.equal(got.values.length, 4);
    assert.equal(bits(got.values), bits(headReference));
  });

  it('aarch64: cross-built against the aarch64 packages, the same bits under qemu', function () {
    const pkg = join(ROOT, 'build', 'delegate-aarch64', 'install', 'lib', 'cmake', 'lutham_backend');
    const et = join(ROOT, 'build', 'et-aarch64', 'executorch', 'lib', 'cmake', 'executorch');
    const missing = [
      [existsSync(pkg) && existsSync(et), 'the aarch64 delegate build (scripts/build-delegate.sh aarch64)'],
      [onPath('aarch64-linux-gnu-g++'), 'aarch64-linux-gnu-g++ (apt-get install g++-aarch64-linux-gnu)'],
      [onPath('qemu-aarch64') && existsSync(QEMU_SYSROOT), 'qemu-aarch64 (apt-get install qemu-user)'],
    ].filter(([ok]) => !ok).map(([, what]) => what);
    if (missing.length) {
      console.log(`      skipped: needs ${missing.join(', ')}`);
      this.skip();
    }
    const app = buildApp(join(dir, 'arm'), et, pkg, [`-DCMAKE_TOOLCHAIN_FILE=${join(ROOT, 'delegate', 'cmake', 'aarch64-linux-gnu.cmake')}`]);
    const r = sh('qemu-aarch64', ['-L', QEMU_SYSROOT, app, '--model', pte, '--input', xBin, '--threads', '2']);
    assert.equal(r.status, 0, r.stderr);
    const got = parseApp(r.stdout);
    assert.equal(got.threads, 2);
    assert.equal(bits(got.values), bits(reference));
  });
});
