#!/usr/bin/env node
// Provisions everything LUTHAM's Python side needs; `npm install` runs it (postinstall).
//  - Debian packages (only when missing, only as root): see DEBIAN_PACKAGES.
//  - .venv: a virtual environment from py_bridge/requirements.lock, skipped when the
//    stamp in .venv says the lock file has not changed since the last install.
// LUTHAM_PYTHON=/path/to/python uses that interpreter instead of the venv (it must
// already have the packages of py_bridge/requirements.txt).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const venv = join(root, '.venv');
const venvPython = join(venv, 'bin', 'python');
const lockFile = join(root, 'py_bridge', 'requirements.lock');
const stampFile = join(venv, '.lutham-requirements.sha256');

// dataset-fashion-mnist: the real data for examples and evaluation.
// flatbuffers-compiler + libflatbuffers-dev: the C++ payload code and its headers.
// g++-aarch64-linux-gnu + qemu-user: the Jetson-class (aarch64) build of the delegate and
// its check under emulation.
// clang + libclang-rt-14-dev (libFuzzer, ASan and UBSan runtimes; only recommended by clang,
// and we install without recommends): scripts/fuzz.sh.
export const DEBIAN_PACKAGES = ['dataset-fashion-mnist', 'flatbuffers-compiler', 'libflatbuffers-dev', 'g++-aarch64-linux-gnu', 'qemu-user', 'chromium', 'clang', 'libclang-rt-14-dev'];

function log(msg) { process.stderr.write(`[lutham setup] ${msg}\n`); }

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', process.stderr, process.stderr], ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
}

function missingDebianPackages() {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Package} ${Status}\n', ...DEBIAN_PACKAGES], { encoding: 'utf8' });
  if (r.error) return []; // not a Debian system: nothing we can do here
  const installed = new Set(r.stdout.split('\n').filter((l) => l.endsWith('install ok installed')).map((l) => l.split(' ')[0]));
  return DEBIAN_PACKAGES.filter((p) => !installed.has(p));
}

function setupDebian() {
  const missing = missingDebianPackages();
  if (missing.length === 0) return;
  if (process.getuid && process.getuid() !== 0) {
    log(`missing Debian packages: ${missing.join(' ')}; install them with: sudo apt-get install -y ${missing.join(' ')}`);
    return;
  }
  log(`installing Debian packages: ${missing.join(' ')}`);
  run('apt-get', ['update', '-qq']);
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

function findBasePython() {
  for (const cand of ['python3.11', 'python3.12', 'python3.13', 'python3.10', 'python3']) {
    const r = spawnSync(cand, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' });
    if (r.status === 0) {
      const [maj, min] = r.stdout.trim().split('.').map(Number);
      if (maj === 3 && min >= 10 && min <= 13) return cand;
    }
  }
  throw new Error('no Python 3.10-3.13 found on PATH (executorch 1.5.1 needs one); set LUTHAM_PYTHON to an interpreter with py_bridge/requirements.txt installed');
}

function setupVenv() {
  const want = createHash('sha256').update(readFileSync(lockFile)).digest('hex');
  if (existsSync(venvPython) && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === want) {
    log('Python venv is up to date (.venv)');
    return;
  }
  if (!existsSync(venvPython)) {
    const base = findBasePython();
    log(`creating .venv with ${base}`);
    run(base, ['-m', 'venv', venv]);
  }
  log('installing the Python packages of py_bridge/requirements.lock into .venv (first time: ~3.5 GB, a few minutes)');
  run(venvPython, ['-m', 'pip', 'install', '--disable-pip-version-check', '--progress-bar', 'on', '-r', lockFile]);
  writeFileSync(stampFile, want + '\n');
  log('Python venv ready');
}

// The C++ delegate (liblutham_backend.so, lutham_runner) for this machine and, when the
// cross compiler is there, for aarch64 boards. Incremental: a no-op when nothing changed.
function buildDelegate() {
  const script = join(root, 'scripts', 'build-delegate.sh');
  log('building the C++ delegate (build/delegate)');
  run('bash', [script]);
  if (spawnSync('sh', ['-c', 'command -v aarch64-linux-gnu-g++']).status === 0) {
    log('building the aarch64 delegate (build/delegate-aarch64)');
    run('bash', [script, 'aarch64']);
  } else {
    log('no aarch64 cross compiler (g++-aarch64-linux-gnu): skipping the aarch64 build');
  }
}

try {
  if (process.env.LUTHAM_SKIP_SETUP === '1') {
    log('LUTHAM_SKIP_SETUP=1: skipping');
  } else {
    setupDebian();
    if (process.env.LUTHAM_PYTHON) {
      log(`using LUTHAM_PYTHON=${process.env.LUTHAM_PYTHON} (no venv)`);
    } else {
      setupVenv();
    }
    buildDelegate();
  }
} catch (err) {
  log(`failed: ${err.message}`);
  process.exit(1);
}
