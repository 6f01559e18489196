// Broken .pte files made from a good one, for the "bad files are rejected cleanly" tests.
import { readFile } from 'node:fs/promises';

import { writeTemp, type PyFacts } from './pte.js';

/** Deterministic pseudo-random bytes (xorshift32). */
export function garbage(n: number, seed = 12345): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export interface BadFile {
  name: string;
  path: string;
  /** A fragment the error message must contain (case-insensitive). */
  expect: RegExp;
}

/** Bad variants of the SHARe-KAN file `lutham` (described by `facts`). */
export async function makeBadFiles(lutham: string, facts: PyFacts): Promise<BadFile[]> {
  const good = new Uint8Array(await readFile(lutham));
  const out: BadFile[] = [];
  const add = async (name: string, bytes: Uint8Array | string, expect: RegExp) => out.push({ name, path: await writeTemp(name, bytes), expect });

  await add('text.pte', 'hello, this is not a pte file at all\n', /not a \.pte file/i);
  await add('empty.pte', new Uint8Array(0), /not a \.pte file/i);
  await add('tiny.pte', good.subarray(0, 6), /not a \.pte file/i);

  const wrongId = good.slice();
  wrongId.set([0x58, 0x58, 0x39, 0x39], 4); // "XX99"
  await add('wrong-identifier.pte', wrongId, /identifier "XX99"/);

  const oldVersion = good.slice();
  oldVersion.set([0x45, 0x54, 0x30, 0x39], 4); // "ET09"
  await add('old-version.pte', oldVersion, /unsupported \.pte version ET09/);

  await add('truncated-segments.pte', good.subarray(0, Math.floor(good.length * 0.6)), /truncated/i);
  await add('truncated-program.pte', good.subarray(0, Math.floor(facts.program_size / 2)), /truncated/i);
  await add('truncated-header.pte', good.subarray(0, 20), /truncated/i);

  const badProgram = good.slice();
  badProgram.set(garbage(facts.program_size - 48), 48); // keep the 8-byte prefix and the extended header
  badProgram.set(garbage(4, 99), 0); // and a wild root offset
  badProgram.set([0x45, 0x54, 0x31, 0x32], 4); // but a valid "ET12"
  await add('garbage-program.pte', badProgram, /corrupt/i);

  // The first LuthamBackend payload: its segment's absolute range.
  const seg = facts.plans[0].delegates.find((d) => d.id === 'LuthamBackend' && d.location === 'segment')!;
  const s = facts.segments[seg.index];
  const at = facts.segment_base_offset + s.offset;

  const junkPayload = good.slice();
  junkPayload.set(garbage(s.size, 7), at);
  await add('garbage-payload.pte', junkPayload, /not a LUTHAM payload/);

  const junkBody = good.slice();
  junkBody.set(garbage(s.size - 8, 8), at + 8); // keeps the root offset and "LTHM"
  await add('garbage-payload-body.pte', junkBody, /payload/i);

  const cb = facts.named_data.find((n) => n.codebook)!;
  const c = facts.segments[cb.segment_index];
  const junkCodebook = good.slice();
  junkCodebook.set(garbage(c.size - 8, 9), facts.segment_base_offset + c.offset + 8);
  await add('garbage-codebook.pte', junkCodebook, /codebook/i);

  return out;
}
