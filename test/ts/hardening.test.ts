// Issue 9: faults and bad input through the CLI as a user meets them. Each case must end with
// exactly one `lutham: ...` line on stderr (no stack, no ExecuTorch log), the documented exit
// status, no hang, no Python left running and no partial or mismatched outputs.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { LuthamError, oneLine } from '../../ts/errors.js';
import { writeReport } from '../../ts/lib/report.js';
import { PROJECT_ROOT, VENV_PYTHON } from '../../ts/paths.js';
import { garbage, makeBadFiles } from './helpers/bad-files.js';
import { fixtureResults } from './helpers/eval-results.js';
import { cleanupTemp, smallPtes, SMALL, type PtePair } from './helpers/pte.js';

const CLI = join(PROJECT_ROOT, 'ts', 'cli.ts');
const TINY = ['--backbone', 'none', '--heads', '2', '--widths', '16,4', '--grid', '4', '--codebook-size', '8', '--no-progress'];
/** A hang guard, not a timing check: a hung CLI is killed and the test fails on r.error. */
const HANG_GUARD_MS = 300_000;

function lutham(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: HANG_GUARD_MS,
  });
}

/** The CLI's stderr must be exactly one `lutham:` line matching `re`. */
function assertOneLine(r: { status: number | null; stderr: string; error?: Error }, re: RegExp, status = 1): void {
  assert.equal(r.error, undefined, `the CLI hung or could not start: ${r.error}`);
  assert.equal(r.status, status, r.stderr);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^lutham: /);
  assert.match(lines[0], re);
}

function listDir(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((n) => [n, readFileSync(join(dir, n), 'latin1')]));
}

/** A minimal float32 .npy (format 1.0), so the tests need no Python to make inputs. */
function npyFloat32(shape: number[], values: number[]): Buffer {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(new Float32Array(values).buffer)]);
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

describe('hardening: error messages are one safe line', () => {
  it('oneLine flattens whitespace and escapes controls, bidi overrides and replacement characters', () => {
    assert.equal(oneLine('  bad\n\tfile\r\n'), 'bad file');
    assert.equal(oneLine('a\x1b[31mb\x00c\x9bd'), 'a\\x1b[31mb\\x00c\\x9bd');
    assert.equal(oneLine('x\u202ey\ufffdz'), 'x\\u202ey\\ufffdz');
    assert.equal(oneLine('ünïcödé → ok'), 'ünïcödé → ok');
    const long = oneLine('y'.repeat(5000));
    assert.ok(long.startsWith('y'.repeat(2000) + '... (3000 more characters)'), long.slice(1990, 2040));
  });
});

describe('hardening: a Python child that fails while starting (issue 9.1, 9.8)', function () {
  this.timeout(HANG_GUARD_MS * 2);
  let dir: string;
  let wrapper: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lutham-start-'));
    // The real interpreter, with a sitecustomize that injects LUTHAM_TEST_FAULT while the CLI's
    // child imports lutham.bridge.entry.
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
  for (const [fault, re] of faults) {
    it(`${fault}: one line, exit 1, nothing written`, () => {
      const out = join(dir, `out-${fault}`);
      // `import lutham` (torch, executorch) takes seconds before the faulty module is reached:
      // only the hang case relies on the start-up stall timer.
      const stall = fault === 'hang' ? '5' : '120';
      const r = lutham(['export', ...TINY, '--out', out], { LUTHAM_PYTHON: wrapper, LUTHAM_TEST_FAULT: fault, LUTHAM_STALL_SECONDS: stall });
      assertOneLine(r, re);
      assert.equal(existsSync(join(out, 'dense.pte')), false);
    });
  }

  it('LUTHAM_PYTHON=/bin/false: one line, no EPIPE crash', () => {
    const r = lutham(['export', ...TINY, '--out', join(dir, 'false')], { LUTHAM_PYTHON: '/bin/false' });
    assertOneLine(r, /LUTHAM_PYTHON=\/bin\/false.*exit code 1/);
  });

  it('an interpreter without torch names what is missing', function () {
    const python3 = '/usr/bin/python3';
    if (!existsSync(python3) || spawnSync(python3, ['-c', 'import torch']).status === 0) this.skip();
    const r = lutham(['export', ...TINY, '--out', join(dir, 'notorch')], { LUTHAM_PYTHON: python3 });
    assertOneLine(r, /did not start \(LUTHAM_PYTHON=\/usr\/bin\/python3\): No module named 'torch'; install py_bridge\/requirements\.txt/);
  });
});

describe('hardening: signals end Python with the CLI (issue 9.5)', function () {
  this.timeout(HANG_GUARD_MS * 2);
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'lutham-signal-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Starts an export, sends `signal` once Python reports its first stage, returns how it ended. */
  async function interrupt(signal: NodeJS.Signals, toGroup: boolean, out: string) {
    const p = spawn(process.execPath, ['--import', 'tsx', CLI, 'export', ...TINY.filter((a) => a !== '--no-progress'), '--out', out], {
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
  for (const [signal, toGroup, status] of cases) {
    it(`${signal}${toGroup ? ' to the process group' : ''}: Python ends, the old outputs stay, nothing partial`, async () => {
      const out = join(dir, signal);
      mkdirSync(out);
      for (const f of ['dense.pte', 'lutham.pte', 'report.json']) writeFileSync(join(out, f), `old ${f}`);
      const before = listDir(out);
      const r = await interrupt(signal, toGroup, out);
      assert.equal(r.pythonAlive, false, 'the Python child outlived the CLI');
      if (status === null) {
        assert.equal(r.sig, 'SIGKILL');
      } else {
        assert.equal(r.code, status, r.stderr);
        assert.match(r.stderr, new RegExp(`lutham: interrupted \\(${signal}\\)\\n$`));
        assert.equal(r.stderr.split('\n').filter((l) => l && !/^lutham: (build model|starting)/.test(l)).length, 1, r.stderr);
      }
      assert.doesNotMatch(r.stderr, /Traceback|    at /);
      assert.deepEqual(listDir(out), before);
    });
  }
});

describe('hardening: export refuses bad outputs and flags before any work (issue 9.2, 9.10)', function () {
  this.timeout(HANG_GUARD_MS * 2);
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'lutham-export-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lutham.pte being a directory fails before compressing, old files untouched', () => {
    const out = join(dir, 'isdir');
    mkdirSync(join(out, 'lutham.pte'), { recursive: true });
    writeFileSync(join(out, 'dense.pte'), 'old dense');
    const r = lutham(['export', ...TINY, '--out', out]);
    assertOneLine(r, /--out: .*lutham\.pte exists and is not a regular file/);
    assert.equal(readFileSync(join(out, 'dense.pte'), 'utf8'), 'old dense');
    assert.deepEqual(readdirSync(out).sort(), ['dense.pte', 'lutham.pte']);
  });

  it('flag mistakes are one line without starting Python', () => {
    const noPython = { LUTHAM_PYTHON: '/nonexistent/python' }; // any start would fail differently
    const cases: [string[], RegExp][] = [
      [['export', '--widths', '8,4', '--widths', '4,2'], /^lutham: --widths was given 2 times; give it once$/],
      [['export', '--backbone', 'vgg'], /^lutham: Invalid values: Argument: backbone, Given: "vgg", Choices: .*"none"$/],
      [['export', '--out', ''], /^lutham: --out must name a directory, got ''$/],
      [['export', ...TINY, '--fp32', '--gain-bits', '3'], /^lutham: --gain-bits cannot be used with --fp32/],
      [['run', 'x.pte', '--seed', '1', '--seed', '2'], /^lutham: --seed was given 2 times/],
      [['report', '--out', 'a.html', '--out', 'b.html'], /^lutham: --out was given 2 times/],
      // Terminal escapes and newlines in what the message echoes are escaped, never sent raw.
      [['run', '/nonexistent/x\x1b[2J\ny.pte'], /^lutham: cannot open \/nonexistent\/x\\x1b\[2J y\.pte: no such file$/],
    ];
    for (const [args, re] of cases) assertOneLine(lutham(args, noPython), re);
  });

  it('--heads 1e6 says how much memory it needs instead of trying', () => {
    const r = lutham(['export', '--backbone', 'none', '--heads', '1e6', '--widths', '512,64,4', '--out', join(dir, 'huge')]);
    assertOneLine(r, /^lutham: 1000000 head\(s\) of widths 512,64,4 are [\d.,]+ GB of float32 weights; exporting them needs about [\d.,]+ GB of memory, this machine has [\d.,]+ GB$/);
    assert.equal(existsSync(join(dir, 'huge', 'dense.pte')), false);
  });

  it('a partial checkpoint is refused, naming the missing tensors', () => {
    // head 0's first layer only: what a user saving one submodule gets.
    const ckpt = join(dir, 'partial.pt');
    const py = spawnSync(VENV_PYTHON, ['-c', `
import sys, torch
sys.path.insert(0, ${JSON.stringify(join(PROJECT_ROOT, 'py_bridge'))})
from lutham.model.multihead import ModelConfig, build_model
m = build_model(ModelConfig(backbone="none", heads=2, widths=[16, 4], grid=4))
torch.save({k: v for k, v in m.state_dict().items() if k.startswith("heads.0.")}, ${JSON.stringify(ckpt)})
`], { encoding: 'utf8' });
    assert.equal(py.status, 0, py.stderr);
    const r = lutham(['export', ...TINY, '--weights', ckpt, '--out', join(dir, 'partial')]);
    assertOneLine(r, /checkpoint .*partial\.pt lacks \d+ of the model's \d+ tensors \(heads\.1\..*\); pass --allow-partial/);
  });
});

describe('hardening: lutham run (issue 9.4, 9.6, 9.10)', function () {
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
  });

  it('non-.pte files are refused before ExecuTorch sees them (no abort, no ExecuTorch log)', () => {
    const random = join(dir, 'random.pte');
    writeFileSync(random, garbage(4096, 4));
    const flipped = join(dir, 'flipped.pte');
    const good = readFileSync(pair.lutham);
    good[5] ^= 0x01; // "ET12" -> "EU12"
    writeFileSync(flipped, good);
    assertOneLine(lutham(['run', random]), /random\.pte is not a \.pte file \(identifier/);
    assertOneLine(lutham(['run', flipped]), /flipped\.pte is not a \.pte file \(identifier "EU12"/);
  });

  it('a payload ExecuTorch rejects is one line; a good run prints no ExecuTorch log', async () => {
    const bad = (await makeBadFiles(pair.lutham, pair.facts[pair.lutham])).find((b) => b.name === 'garbage-payload.pte')!;
    assertOneLine(lutham(['run', bad.path, '--repeat', '1']), /^lutham: cannot load .*garbage-payload\.pte/);
    const ok = lutham(['run', pair.lutham, '--repeat', '1']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stderr, '', 'ExecuTorch or cpuinfo log lines reached the user');
  });

  it('NaN/Inf inputs are reported, not a crash; --output writes exactly the path it names', () => {
    const n = SMALL.widths[0];
    const values = Array.from({ length: n }, (_, i) => (i === 0 ? NaN : i === 1 ? Infinity : 0.1));
    const input = join(dir, 'nan.npy');
    writeFileSync(input, npyFloat32([1, n], values));
    const output = join(dir, 'result.bin'); // no .npy suffix
    const r = lutham(['run', pair.lutham, '--input', input, '--output', output, '--repeat', '1', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.deepEqual(info.non_finite_inputs, [2]);
    assert.ok(info.non_finite_outputs > 0);
    assert.equal(info.sum, 'NaN');
    assert.equal(info.output, output);
    assert.ok(existsSync(output) && !existsSync(`${output}.npy`), '--output wrote somewhere else');
    assert.equal(readFileSync(output).subarray(0, 6).toString('latin1'), '\x93NUMPY');
    const text = lutham(['run', pair.lutham, '--input', input, '--repeat', '1']);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /checksum: sum=nan abs_sum=nan\n[\s\S]*warning: input 0 has 2 NaN\/Inf value\(s\)\nwarning: \d+ output value\(s\) are NaN\/Inf\n$/);
  });

  it('inspect and run on a FIFO fail at once instead of waiting for a writer', () => {
    const fifo = join(dir, 'fifo.pte');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    assertOneLine(lutham(['inspect', fifo]), /cannot read .*fifo\.pte: not a regular file/);
    assertOneLine(lutham(['run', fifo]), /cannot read .*fifo\.pte: not a regular file/);
  });
});

describe('hardening: lutham report outputs (issue 9.9)', () => {
  let dir: string;
  let results: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lutham-report-out-'));
    results = join(dir, 'results.json');
    writeFileSync(results, JSON.stringify(fixtureResults()));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--out an existing directory: one clear error, no temp file left', async () => {
    const target = join(dir, 'adir');
    mkdirSync(target);
    await assert.rejects(writeReport({ out: target, results }), (e: Error) => e instanceof LuthamError && /is a directory; name the HTML file/.test(e.message));
    assert.deepEqual(readdirSync(target), []);
    assert.deepEqual(readdirSync(dir).sort(), ['adir', 'results.json']);
  });

  it("--out into an export's directory does not overwrite its report.json", async () => {
    const exportDir = join(dir, 'export');
    mkdirSync(exportDir);
    const exportReport = JSON.stringify({ model: { heads: 1 }, ratio: { file: 20 } });
    writeFileSync(join(exportDir, 'report.json'), exportReport);
    await assert.rejects(writeReport({ out: join(exportDir, 'report.html'), results }), /report\.json already exists and was not written by 'lutham report'/);
    assert.equal(readFileSync(join(exportDir, 'report.json'), 'utf8'), exportReport);
    assert.deepEqual(readdirSync(exportDir), ['report.json']);
    // A report's own report.json is replaced as before.
    const own = join(dir, 'own');
    const first = await writeReport({ out: join(own, 'report.html'), results });
    const second = await writeReport({ out: join(own, 'report.html'), results });
    assert.deepEqual(second, first);
  });
});
