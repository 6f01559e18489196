// Runs in a child process for test/ts/fuzz.test.ts (`node --import tsx fuzz-worker.ts JOB`), so
// that a reader stuck in a synchronous loop can be detected: the test kills it when it stops
// reporting.
//
// Each iteration mutates a real file with a seeded PRNG and feeds it to the readers; anything
// but a LuthamError (or success) is reported with the seed and mutation that caused it.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { LuthamError } from '../../../ts/errors.js';
import { decodeCodebook, decodePayload } from '../../../ts/payload/verify.js';
import { comparePte } from '../../../ts/pte/compare.js';
import { inspectPte } from '../../../ts/pte/inspect.js';
import { formatInspect } from '../../../ts/render/inspect.js';

export interface FuzzJob {
  seed: number;
  fileIterations: number;
  payloadIterations: number;
  dense: string;
  lutham: string;
  /** [offset, size] in the lutham file of a LuthamBackend payload and of a codebook. */
  payload: [number, number];
  codebook: [number, number];
  /** Programs' byte count: half of the file mutations aim at the flatbuffer program. */
  programSize: number;
  workDir: string;
}

export type FuzzMessage =
  | { kind: 'progress'; iteration: number }
  | { kind: 'bad'; iteration: number; target: string; mutation: string; error: string; file?: string }
  | { kind: 'done'; ok: number; rejected: number; messages: string[] };

/** mulberry32: small, fast, seedable. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING_U32 = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff];

/** One seeded mutation of `src`; `focus` = [start, end) where positions are drawn. */
export function mutate(src: Uint8Array, rand: () => number, focus: [number, number]): { bytes: Uint8Array; what: string } {
  const int = (n: number) => Math.floor(rand() * n);
  const pos = () => focus[0] + int(Math.max(1, focus[1] - focus[0]));
  let b = src.slice();
  const what: string[] = [];
  const steps = 1 + int(4);
  for (let s = 0; s < steps; s++) {
    const p = Math.min(pos(), Math.max(0, b.length - 1));
    switch (int(7)) {
      case 0: { const bit = int(8); b[p] ^= 1 << bit; what.push(`flip bit ${bit} at ${p}`); break; }
      case 1: { const v = int(256); b[p] = v; what.push(`byte ${v} at ${p}`); break; }
      case 2: {
        const v = INTERESTING_U32[int(INTERESTING_U32.length)];
        if (p + 4 <= b.length) new DataView(b.buffer, b.byteOffset).setUint32(p, v, true);
        what.push(`u32 ${v} at ${p}`);
        break;
      }
      case 3: { const n = int(b.length + 1); b = b.slice(0, n); what.push(`truncate to ${n}`); break; }
      case 4: {
        const n = 1 + int(64);
        const extra = new Uint8Array(n).map(() => int(256));
        const out = new Uint8Array(b.length + n);
        out.set(b.subarray(0, p)); out.set(extra, p); out.set(b.subarray(p), p + n);
        b = out;
        what.push(`insert ${n} random bytes at ${p}`);
        break;
      }
      case 5: { const n = 1 + int(256); b.fill(0, p, p + n); what.push(`zero ${n} bytes at ${p}`); break; }
      default: {
        const from = int(b.length);
        const n = 1 + int(128);
        b.copyWithin(p, from, from + n);
        what.push(`copy ${n} bytes from ${from} to ${p}`);
      }
    }
  }
  return { bytes: b, what: what.join(', ') };
}

async function main(job: FuzzJob): Promise<void> {
  const { readFile } = await import('node:fs/promises');
  const lutham = new Uint8Array(await readFile(job.lutham));
  const dense = new Uint8Array(await readFile(job.dense));
  const rand = prng(job.seed);
  const messages = new Set<string>();
  let ok = 0;
  let rejected = 0;
  const post = (m: FuzzMessage) => process.send!(m);
  const attempt = async (iteration: number, target: string, mutation: string, fn: () => unknown, bytes?: Uint8Array) => {
    try {
      await fn();
      ok++;
    } catch (e) {
      if (e instanceof LuthamError && !e.message.includes('\n')) {
        rejected++;
        messages.add(e.message.replace(/\/\S+/g, '<path>').replace(/\d+/g, 'N'));
        return;
      }
      let file: string | undefined;
      if (bytes) {
        file = join(job.workDir, `crash-${job.seed}-${iteration}.pte`);
        await writeFile(file, bytes);
      }
      post({ kind: 'bad', iteration, target, mutation, error: String((e as Error)?.stack ?? e), file });
    }
  };

  for (let i = 0; i < job.fileIterations; i++) {
    post({ kind: 'progress', iteration: i });
    const useDense = rand() < 0.25;
    const src = useDense ? dense : lutham;
    const focus: [number, number] = rand() < 0.5 ? [0, Math.min(job.programSize, src.length)] : [0, src.length];
    const { bytes, what } = mutate(src, rand, focus);
    const path = join(job.workDir, `mutant-${i % 4}.pte`);
    await writeFile(path, bytes);
    // Every other file also through `inspect --verify` (the full decode of each payload and codebook).
    await attempt(i, useDense ? 'inspect dense' : 'inspect lutham', what, async () => formatInspect(await inspectPte(path, { verify: i % 2 === 1 })), bytes);
    if (!useDense && i % 4 === 0) await attempt(i, 'compare', what, () => comparePte(job.dense, path), bytes);
  }
  for (let i = 0; i < job.payloadIterations; i++) {
    if (i % 50 === 0) post({ kind: 'progress', iteration: job.fileIterations + i });
    const codebook = rand() < 0.3;
    const [at, size] = codebook ? job.codebook : job.payload;
    const src = lutham.subarray(at, at + size);
    const { bytes, what } = mutate(src, rand, [0, src.length]);
    // The full decode runs the readers' checks first, then the checksum and every index.
    await attempt(job.fileIterations + i, codebook ? 'decodeCodebook' : 'decodePayload', what, () => (codebook ? decodeCodebook(bytes) : decodePayload(bytes)));
  }
  post({ kind: 'done', ok, rejected, messages: [...messages].sort() });
}

if (process.send && process.argv[2]) {
  main(JSON.parse(process.argv[2]) as FuzzJob)
    .catch((e) => process.send!({ kind: 'bad', iteration: -1, target: 'worker', mutation: '', error: String(e?.stack ?? e) }))
    .finally(() => process.disconnect());
}
