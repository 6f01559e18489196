// ts/bridge/python.ts: the Python child as a user meets its failures. A child that fails while
// starting, and signals to the CLI, must end with exactly one `lutham: ...` line on stderr (no
// stack, no ExecuTorch log), the documented exit status, no hang, no Python left running and
// no partial or mismatched outputs.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { PROJECT_ROOT, VENV_PYTHON } from '../../ts/paths.js';
import { assertOneLine, CLI, HANG_GUARD_MS, luthamAsync, type CliResult } from './helpers/cli.js';

const TINY = ['--backbone', 'none', '--heads', '2', '--widths', '16,4', '--grid', '4', '--codebook-size', '8', '--no-progress'];

function listDir(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((n) => [n, readFileSync(join(dir, n), 'latin1')]));
}

function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('bridge: a Python child that fails while starting', function () {
  this.timeout(HANG_GUARD_MS * 2);
  let dir: string;
  let wrapper: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lutham-start-'));
    // The real interpreter, with a sitecustomize that injects LUTHAM_TEST_FAULT while the CLI's
    // child imports lutham.bridge_entry.
    wrapper = join(dir, 'python');
    const hooks = join(PROJECT_ROOT, 'test', 'ts', 'helpers', 'fault-python');
    writeFileSync(wrapper, `#!/bin/sh\nPYTHONPATH=${hooks}:$PYTHONPATH exec ${VENV_PYTHON} "$@"\n`);
    chmodSync(wrapper, 0o755);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const faults: [string, RegExp][] = [
    ['raise', /did not start .*: injected start-up failure$/],
    ['exit', /did not start .*exited unexpectedly \(exit code 3\)/],
    ['kill', /did not start .*exited unexpectedly \(signal SIGKILL\)/],
    ['stop', /did not start .*was stopped \(SIGSTOP\)/],
    ['hang', /did not start .*made no progress while starting for 5 s/],
  ];
  // The five starts are independent: they run side by side, each test checks its own.
  let runs: Promise<CliResult>[];
  before(() => {
    runs = faults.map(([fault]) => {
      // `import lutham` (torch, executorch) takes seconds before the faulty module is reached:
      // only the hang case relies on the start-up stall timer.
      const stall = fault === 'hang' ? '5' : '300';
      return luthamAsync(['export', ...TINY, '--out', join(dir, `out-${fault}`)], { LUTHAM_PYTHON: wrapper, LUTHAM_TEST_FAULT: fault, LUTHAM_STALL_SECONDS: stall });
    });
  });
  faults.forEach(([fault, re], i) => {
    it(`${fault}: one line, exit 1, nothing written`, async () => {
      assertOneLine(await runs[i], re);
      assert.equal(existsSync(join(dir, `out-${fault}`, 'dense.pte')), false);
    });
  });

  it('LUTHAM_PYTHON=/bin/false: one line, no EPIPE crash', async () => {
    const r = await luthamAsync(['export', ...TINY, '--out', join(dir, 'false')], { LUTHAM_PYTHON: '/bin/false' });
    assertOneLine(r, /LUTHAM_PYTHON=\/bin\/false.*exit code 1/);
  });

  it('a missing Python environment is a clear error', async () => {
    const r = await luthamAsync(['export', ...TINY, '--out', join(dir, 'nopy')], { LUTHAM_PYTHON: join(dir, 'no-such-python') });
    assertOneLine(r, /^lutham: LUTHAM_PYTHON=.* is not an executable Python interpreter$/);
  });

  it('an interpreter without our packages names the first one missing', async function () {
    const python3 = '/usr/bin/python3';
    if (!existsSync(python3) || spawnSync(python3, ['-c', 'import torch']).status === 0) this.skip();
    const r = await luthamAsync(['export', ...TINY, '--out', join(dir, 'notorch')], { LUTHAM_PYTHON: python3 });
    assertOneLine(r, /did not start \(LUTHAM_PYTHON=\/usr\/bin\/python3\): No module named '(numpy|torch)'; install py_bridge\/requirements\.txt/);
  });
});

describe('bridge: signals end Python with the CLI', function () {
  this.timeout(HANG_GUARD_MS * 2);
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'lutham-signal-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Starts an export, sends `signal` once Python reports its first stage, returns how it ended. */
  async function interrupt(signal: NodeJS.Signals, toGroup: boolean, out: string) {
    const p = spawn(process.execPath, [CLI, 'export', ...TINY.filter((a) => a !== '--no-progress'), '--out', out], {
      cwd: PROJECT_ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let python = 0;
    const guard = setTimeout(() => process.kill(-p.pid!, 'SIGKILL'), HANG_GUARD_MS);
    p.stderr.on('data', (d) => {
      stderr += d;
      if (!python && /lutham: build model/.test(stderr)) {
        python = Number(readFileSync(`/proc/${p.pid}/task/${p.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
        // A terminal's Ctrl-C reaches the whole process group; kill(1) reaches the CLI only.
        process.kill(toGroup ? -p.pid! : p.pid!, signal);
      }
    });
    const [code, sig] = await new Promise<[number | null, string | null]>((res) => p.on('exit', (c, s) => res([c, s])));
    clearTimeout(guard);
    assert.ok(python > 0, `Python never reported progress:\n${stderr}`);
    // The child removes its temp files and exits within moments; SIGKILL'd parents leave it
    // PDEATHSIG and a parent-pid watchdog.
    for (let i = 0; i < 100 && processAlive(python); i++) await sleep(100);
    return { code, sig, stderr, pythonAlive: processAlive(python) };
  }

  const cases: [NodeJS.Signals, boolean, number | null][] = [
    ['SIGINT', true, 130], // Ctrl-C on a terminal
    ['SIGTERM', false, 143],
    ['SIGKILL', false, null],
  ];
  // Independent exports into their own directories, interrupted side by side.
  const outs: string[] = [];
  const befores: Record<string, string>[] = [];
  let results: Promise<Awaited<ReturnType<typeof interrupt>>>[];
  before(() => {
    results = cases.map(([signal, toGroup], i) => {
      outs[i] = join(dir, signal);
      mkdirSync(outs[i]);
      for (const f of ['dense.pte', 'lutham.pte', 'report.json']) writeFileSync(join(outs[i], f), `old ${f}`);
      befores[i] = listDir(outs[i]);
      return interrupt(signal, toGroup, outs[i]);
    });
    // A rejection is reported by the test that awaits it.
    for (const r of results) r.catch(() => {});
  });
  cases.forEach(([signal, toGroup, status], i) => {
    it(`${signal}${toGroup ? ' to the process group' : ''}: Python ends, the old outputs stay, nothing partial`, async () => {
      const r = await results[i];
      assert.equal(r.pythonAlive, false, 'the Python child outlived the CLI');
      if (status === null) {
        assert.equal(r.sig, 'SIGKILL');
      } else {
        assert.equal(r.code, status, r.stderr);
        assert.match(r.stderr, new RegExp(`lutham: interrupted \\(${signal}\\)\\n$`));
        // Progress lines before the signal: how far the export got depends on the machine.
        assert.equal(r.stderr.split('\n').filter((l) => l && !/^lutham: (starting|.* \(\d+%\)$)/.test(l)).length, 1, r.stderr);
      }
      assert.doesNotMatch(r.stderr, /Traceback|    at /);
      assert.deepEqual(listDir(outs[i]), befores[i]);
    });
  });
});
