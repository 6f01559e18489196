// Test fixtures made by the venv's Python: .pte files of other models than the session's
// (helpers/session.ts) with what ExecuTorch's Python deserializer reports about them (see
// make_pte.py), cached on disk under the OS temp dir, keyed by a hash of everything that
// produces them (make_pte.py and py_bridge/lutham/**/*.py). LUTHAM_TEST_NO_CACHE=1 forces a
// fresh export.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const VENV_PYTHON = process.env.LUTHAM_PYTHON ?? join(ROOT, '.venv', 'bin', 'python');
const MAKE_PTE = join(ROOT, 'test', 'ts', 'helpers', 'make_pte.py');

export interface ModelSpec {
  name: string;
  backbone?: string;
  heads: number;
  widths: number[];
  grid?: number;
  codebook_size?: number;
  image_size?: number;
}

/** What Python sees in one file (make_pte.py `facts`). */
export interface PyFacts {
  file_bytes: number;
  program_size: number;
  segment_base_offset: number;
  segment_data_size: number;
  segments: { offset: number; size: number }[];
  constant_segment: { segment_index: number; offsets: number[] };
  inline_delegate_data: number;
  plans: {
    name: string;
    values: number;
    inputs: number[];
    outputs: number[];
    operators: string[];
    instructions: number;
    delegates: {
      id: string;
      location: 'inline' | 'segment';
      index: number;
      bytes: number;
      layer?: {
        schema_version: number;
        in: number;
        out: number;
        grid: number;
        order: number;
        K: number;
        dim: number;
        index_bits: number;
        codebook_key: string;
        bits: number[];
        r2: number | null;
        indices: number[];
      };
    }[];
    non_const_buffer_sizes: number[];
  }[];
  named_data: { key: string; segment_index: number; bytes: number; deserializer_bytes?: number; codebook?: { size: number; dim: number; bits: number } }[];
}

export interface PtePair {
  dense: string;
  lutham: string;
  facts: Record<string, PyFacts>;
}

/** Runs the venv Python; rejects with its stderr tail on failure. */
export function runPython(args: string[], cwd = join(ROOT, 'py_bridge')): Promise<string> {
  return new Promise((res, rej) => {
    if (!existsSync(VENV_PYTHON)) {
      rej(new Error(`no Python at ${VENV_PYTHON} (run npm install or npm run setup)`));
      return;
    }
    const child = spawn(VENV_PYTHON, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', rej);
    child.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`python ${args[0]} exited ${code}:\n${err.slice(-3000)}`))));
  });
}

async function sourceHash(specs: ModelSpec[]): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify(specs));
  h.update(await readFile(MAKE_PTE));
  const walk = async (dir: string): Promise<void> => {
    for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== '__pycache__') await walk(p);
      } else if (e.name.endsWith('.py')) {
        h.update(p);
        h.update(await readFile(p));
      }
    }
  };
  await walk(join(ROOT, 'py_bridge', 'lutham'));
  return h.digest('hex').slice(0, 16);
}

/** Exports `specs` (cached) and returns the directory and Python's facts per file. */
export async function makePtes(specs: ModelSpec[]): Promise<{ dir: string; facts: Record<string, PyFacts> }> {
  const dir = join(tmpdir(), `lutham-test-pte-${await sourceHash(specs)}`);
  const factsFile = join(dir, 'facts.json');
  if (!process.env.LUTHAM_TEST_NO_CACHE && existsSync(factsFile)) {
    return { dir, facts: JSON.parse(await readFile(factsFile, 'utf8')) };
  }
  const work = `${dir}.tmp-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const out = await runPython([MAKE_PTE, JSON.stringify({ out_dir: work, models: specs })]);
  // Facts are keyed by path: rewrite them for the final directory.
  const raw = JSON.parse(out) as Record<string, PyFacts>;
  const facts: Record<string, PyFacts> = {};
  for (const [p, f] of Object.entries(raw)) facts[join(dir, p.slice(work.length + 1))] = f;
  await writeFile(join(work, 'facts.json'), JSON.stringify(facts));
  await rm(dir, { recursive: true, force: true });
  await rename(work, dir);
  return { dir, facts };
}

/** Writes `bytes` to a fresh temp file and returns its path. */
export async function writeTemp(name: string, bytes: Uint8Array | string): Promise<string> {
  const dir = join(tmpdir(), `lutham-test-bad-${process.pid}`);
  await mkdir(dir, { recursive: true });
  const p = join(dir, name);
  await writeFile(p, bytes);
  return p;
}

/** Removes what writeTemp wrote in this process. */
export async function cleanupTemp(): Promise<void> {
  await rm(join(tmpdir(), `lutham-test-bad-${process.pid}`), { recursive: true, force: true });
}
