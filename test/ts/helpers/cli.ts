// The CLI as a user runs it, for every test file: plain node on JavaScript transpiled from the
// sources once per mocha process (no build step needed; `npm run build` type-checks). A run
// through tsx would cost three times the start-up, and the tests start the CLI ~70 times.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import ts from 'typescript';

import { PROJECT_ROOT } from '../../../ts/paths.js';

/**
 * ts/ transpiled (no type check) into a directory beside it, so ts/paths.ts still finds the
 * project root one level up; removed when the process exits.
 */
function transpileCli(): string {
  const src = join(PROJECT_ROOT, 'ts');
  const out = join(PROJECT_ROOT, `.test-cli-${process.pid}`);
  const tmp = `${out}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
  for (const file of walk(src)) {
    const js = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    }).outputText;
    const target = join(tmp, relative(src, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, js);
  }
  renameSync(tmp, out);
  process.on('exit', () => rmSync(out, { recursive: true, force: true }));
  return join(out, 'cli.js');
}

export const CLI = transpileCli();
/** A hang guard, not a timing check: a hung CLI is killed and the test fails on r.error. */
export const HANG_GUARD_MS = 600_000;

export type CliResult = Pick<SpawnSyncReturns<string>, 'status' | 'signal' | 'stdout' | 'stderr' | 'error'>;

/** Runs `lutham args...` and waits for it. */
export function lutham(args: string[], env: NodeJS.ProcessEnv = {}, timeout = HANG_GUARD_MS): CliResult {
  return spawnSync(process.execPath, [CLI, ...args], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout,
  });
}

/** `lutham args...` without blocking the test process, so independent runs can overlap. */
export function luthamAsync(args: string[], env: NodeJS.ProcessEnv = {}, timeout = HANG_GUARD_MS): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], {
      cwd: PROJECT_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let error: Error | undefined;
    p.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const guard = setTimeout(() => {
      error = new Error(`lutham ${args.join(' ')} ran past ${timeout} ms`);
      p.kill('SIGKILL');
    }, timeout);
    p.on('error', (e) => (error = e));
    p.on('close', (status, signal) => {
      clearTimeout(guard);
      resolve({ status, signal, stdout, stderr, error });
    });
  });
}

/** The CLI's stderr must be exactly one `lutham:` line matching `re`. */
export function assertOneLine(r: CliResult, re: RegExp, status = 1): void {
  assert.equal(r.error, undefined, `the CLI hung or could not start: ${r.error}`);
  assert.equal(r.status, status, r.stderr);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^lutham: /);
  assert.match(lines[0], re);
}

/** stderr without progress lines and torch's W.... warnings: what is left is the error. */
export function errorText(stderr: string): string {
  return stderr.replace(/^W\d{4} .*\n/gm, '').replace(/^lutham: (build|starting).*\n/gm, '');
}

/** A minimal float32 .npy (format 1.0), so the tests need no Python to make inputs. */
export function npyFloat32(shape: number[], values: number[]): Buffer {
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
