#!/usr/bin/env node
// `npm test`: every suite (TypeScript/mocha, Python/pytest, C++/ctest when built, a 30-second
// fuzz smoke), with their own output, then ONE closing line `N passed, N failed[, N skipped]`
// that counts them all.
//   node scripts/test.mjs --only ts|py|cpp|fuzz
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : null;
const python = process.env.LUTHAM_PYTHON || join(root, '.venv', 'bin', 'python');
const results = join(root, 'test-results');
mkdirSync(results, { recursive: true });

// Suites run concurrently (pytest and mocha each keep about one core busy, mostly in child
// processes), each one's output buffered and printed whole in a fixed order, so the log reads as
// if they ran one after another. LUTHAM_TEST_SERIAL=1 runs them one at a time.
function run(cmd, args, opts = {}) {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    let error = null;
    child.on('error', (e) => { error = e; });
    child.on('close', (status, signal) => done({
      status, signal, error, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'),
    }));
  });
}

function show(r, stderr = r.stderr) {
  process.stdout.write(r.stdout ?? '');
  process.stderr.write(stderr ?? '');
  if (r.error) process.stderr.write(`test: ${r.error.message}\n`);
}

function count(re, text) {
  const m = text.match(re);
  return m ? Number(m[1]) : 0;
}

const totals = { passed: 0, failed: 0, skipped: 0 };
const add = (name, p, f, s, ok) => {
  // A suite that crashed before reporting counts as one failure, never as silence.
  if (!ok && f === 0) f = 1;
  totals.passed += p; totals.failed += f; totals.skipped += s;
  process.stdout.write(`[${name}] ${p} passed, ${f} failed, ${s} skipped\n`);
};

const suites = [];

if (!only || only === 'py') {
  const xml = join(results, 'pytest.xml');
  suites.push({
    start: () => run(python, ['-m', 'pytest', 'test/python', '-q', '-p', 'no:cacheprovider', `--junitxml=${xml}`], {
      env: { ...process.env, PYTHONPATH: [join(root, 'py_bridge'), process.env.PYTHONPATH].filter(Boolean).join(':') },
    }),
    report: (r) => {
      show(r);
      let p = 0, f = 0, s = 0;
      if (existsSync(xml)) {
        const head = readFileSync(xml, 'utf8').match(/<testsuite [^>]*>/)?.[0] ?? '';
        const tests = count(/ tests="(\d+)"/, head);
        f = count(/ failures="(\d+)"/, head) + count(/ errors="(\d+)"/, head);
        s = count(/ skipped="(\d+)"/, head);
        p = tests - f - s;
      }
      add('python', p, f, s, r.status === 0 || r.status === 1);
    },
  });
}

if (!only || only === 'ts') {
  suites.push({
    start: () => run('npx', ['mocha', '--reporter', 'spec', '--no-color']),
    report: (r) => {
      show(r);
      const out = r.stdout ?? '';
      add('typescript', count(/(\d+) passing/, out), count(/(\d+) failing/, out), count(/(\d+) pending/, out), r.status !== null);
    },
  });
}

if (!only || only === 'cpp') {
  const build = join(root, 'build', 'delegate');
  if (existsSync(join(build, 'CTestTestfile.cmake'))) {
    const ctest = existsSync(join(root, '.venv', 'bin', 'ctest')) ? join(root, '.venv', 'bin', 'ctest') : 'ctest';
    suites.push({
      start: () => run(ctest, ['--test-dir', build, '--output-on-failure']),
      report: (r) => {
        show(r);
        const out = r.stdout ?? '';
        // "100% tests passed out of 3" or "66% tests passed, 1 tests failed out of 3"
        const total = count(/tests passed.* out of (\d+)/, out);
        const failed = count(/(\d+) tests failed/, out);
        add('c++', total - failed, failed, 0, r.status === 0 || total > 0);
      },
    });
  }
}

if (!only || only === 'fuzz') {
  // 30-second libFuzzer smoke of the payload parsers and the kernel (scripts/fuzz.sh):
  // 1 passed when it ends with no crash. Needs clang + libFuzzer (setup installs them as root).
  if (spawnSync('sh', ['-c', 'command -v clang++']).status !== 0) {
    process.stderr.write('test: no clang++ (apt-get install clang libclang-rt-14-dev): fuzz smoke skipped\n');
    add('fuzz', 0, 0, 1, true);
  } else {
    suites.push({
      start: () => run('bash', [join(root, 'scripts', 'fuzz.sh'), '--seconds', '30']),
      report: (r) => {
        const ok = r.status === 0 && /^fuzz: \d+ executions in \d+ s, 0 crashes/m.test(r.stdout ?? '');
        // libFuzzer's progress lines are noise on success; a crash shows its whole report.
        const lines = (r.stderr ?? '').split('\n');
        show(r, (ok ? lines.filter((l) => l.startsWith('[lutham fuzz]')) : lines).join('\n') + '\n');
        add('fuzz', ok ? 1 : 0, ok ? 0 : 1, 0, ok);
      },
    });
  }
}

if (process.env.LUTHAM_TEST_SERIAL === '1') {
  for (const suite of suites) suite.report(await suite.start());
} else {
  // pytest and mocha together (the long ones); ctest and the fuzz smoke, one after the other,
  // on the core the first of them to finish frees. Reports in the fixed order.
  const [first, second] = [suites.filter((s, i) => i < 2), suites.filter((s, i) => i >= 2)];
  const running = first.map((s) => s.start());
  const rest = Promise.race(running).then(async () => {
    const out = [];
    for (const suite of second) out.push(await suite.start());
    return out;
  });
  const results = [...(await Promise.all(running)), ...(await rest)];
  [...first, ...second].forEach((s, i) => s.report(results[i]));
}

process.stdout.write(`${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}\n`);
process.exit(totals.failed > 0 ? 1 : 0);
