// The byte-flip probe of issue 15 as a regression suite: seeded single-bit flips over the
// ExecuTorch program flatbuffer (the file's first 2 KB, before the first LUTHAM payload) and over
// the LUTHAM payloads of the session's small lutham.pte, each mutated file run through `lutham run`
// (the CLI) and build/delegate/lutham_runner. Neither may die of a signal: exit 0 with a finite
// checksum, or a non-zero exit with one clear error line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as flatbuffers from 'flatbuffers';

import { Program } from '../../ts/generated/executorch-flatbuffer.js';
import { PROJECT_ROOT } from '../../ts/paths.js';
import { HANG_GUARD_MS, luthamAsync } from './helpers/cli.js';
import { smallPtes } from './helpers/session.js';

const SEED = 15;
/** Flips per region: small enough for CI (every CLI run starts Python). */
const PER_REGION = 4;
const RUNNER = join(PROJECT_ROOT, 'build', 'delegate', 'lutham_runner');

/** mulberry32: a seeded PRNG, so the flips are the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface Flip { region: string; offset: number; bit: number; file: string }

/** lutham_runner on `file`: no signal, exit 1, last stderr line matching `last` (skipped, said, when not built). */
function runnerFailsWithOneLine(file: string, last: RegExp): void {
  if (!existsSync(RUNNER)) {
    console.log(`    lutham_runner not built (scripts/build-delegate.sh): only lutham run checked`);
    return;
  }
  const r = spawnSync(RUNNER, ['--model', file, '--repeat', '1'], { encoding: 'latin1', timeout: 120_000 });
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr.trim().split('\n').pop()!, last);
}

describe('probe: seeded byte flips never crash lutham run or lutham_runner', function () {
  this.timeout(HANG_GUARD_MS);
  let dir: string;
  let flips: Flip[];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lutham-probe-'));
    const bytes = readFileSync((await smallPtes()).lutham);
    const payloads: number[] = [];
    for (let i = bytes.indexOf('LTHM'); i >= 0; i = bytes.indexOf('LTHM', i + 1)) payloads.push(i);
    assert.ok(payloads.length > 0, 'no LUTHAM payload in the session lutham.pte');
    const rand = prng(SEED);
    const pick = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo));
    const regions: [string, () => number][] = [
      ['program', () => pick(0, Math.min(2048, payloads[0]))],
      // a payload from its identifier on (the flatbuffer before it holds its root offset)
      ['payload', () => { const p = payloads[pick(0, payloads.length)]; return pick(p - 4, p + 512); }],
    ];
    flips = regions.flatMap(([region, at]) => Array.from({ length: PER_REGION }, (_, k) => {
      const offset = at();
      const bit = pick(0, 8);
      const b = Buffer.from(bytes);
      b[offset] ^= 1 << bit;
      const file = join(dir, `${region}-${k}.pte`);
      writeFileSync(file, b);
      return { region, offset, bit, file };
    }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  // Found by this probe (offset 1500, bit 4): a plan output's value index, in bounds for the
  // verifier but past the plan's values, made Method::get_output abort lutham_runner (ET_CHECK,
  // SIGABRT). The runner now checks every input/output through MethodMeta first.
  it('an output value index past the plan\'s values: exit 1 with one line, no abort', async () => {
    const bytes = Buffer.from(readFileSync((await smallPtes()).lutham));
    const plan = Program.getRootAsProgram(new flatbuffers.ByteBuffer(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length))).executionPlan(0)!;
    const outputs = plan.outputsArray()!;
    const at = outputs.byteOffset - bytes.byteOffset;
    bytes.writeInt32LE(plan.valuesLength() + 11, at);
    const file = join(dir, 'output-index.pte');
    writeFileSync(file, bytes);
    runnerFailsWithOneLine(file, /^lutham_runner: reading output meta failed \(error 35\)$/);
    const cli = await luthamAsync(['run', file, '--repeat', '1']);
    assert.equal(cli.signal, null, cli.stderr);
    assert.equal(cli.status, 1, cli.stderr);
    assert.match(cli.stderr, /^lutham: cannot run .* \(internal value index \d+ out of range \[0,\d+\) for output 0\)\n$/);
  });

  // Found by a byte flip of the session's 3-head file (offset 1128, bit 3): a delegate whose
  // `processed` field is absent (a valid flatbuffer, so no verifier refuses it) makes ExecuTorch
  // 1.5.1's BackendDelegate::Init dereference null. `lutham run` refuses it with its reader first,
  // lutham_runner with its own program check (runner/program_check.cpp).
  it('a delegate without its processed data: exit 1 with one line, no crash', async () => {
    const bytes = Buffer.from(readFileSync((await smallPtes()).lutham));
    const bb = new flatbuffers.ByteBuffer(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
    const delegate = Program.getRootAsProgram(bb).executionPlan(0)!.delegates(0)!;
    const pos = (delegate as unknown as { bb_pos: number }).bb_pos;
    const vtable = pos - bb.readInt32(pos);
    bytes.writeUInt16LE(0, vtable + 4 + 2 * 1); // field 1 of BackendDelegate: processed
    const file = join(dir, 'no-processed.pte');
    writeFileSync(file, bytes);
    runnerFailsWithOneLine(file, /^lutham_runner: .*no-processed\.pte: delegate 0 of plan 0 has no processed data$/);
    const cli = await luthamAsync(['run', file, '--repeat', '1']);
    assert.equal(cli.signal, null, cli.stderr);
    assert.equal(cli.status, 1, cli.stderr);
    assert.match(cli.stderr, /^lutham: .*no-processed\.pte is corrupt: delegate 0 of plan 0 has no processed data\n$/);
  });

  it('lutham run: exit 0 with a finite checksum, or exit 1 with one lutham: line', async () => {
    const runs = await Promise.all(flips.map((f) => luthamAsync(['run', f.file, '--repeat', '1'])));
    runs.forEach((r, i) => {
      const f = flips[i];
      const what = `${f.region} flip at ${f.offset} bit ${f.bit}: status ${r.status} signal ${r.signal}\n${r.stderr}`;
      assert.equal(r.error, undefined, what);
      assert.equal(r.signal, null, what);
      if (r.status === 0) {
        const m = /checksum: sum=(\S+) abs_sum=(\S+)/.exec(r.stdout);
        assert.ok(m && Number.isFinite(Number(m[1])) && Number.isFinite(Number(m[2])), what + r.stdout);
      } else {
        assert.equal(r.status, 1, what);
        const lines = r.stderr.split('\n').filter(Boolean);
        assert.equal(lines.length, 1, what);
        assert.match(lines[0], /^lutham: (cannot load|.* is corrupt|.* is truncated|.* is not a \.pte|the Python side exited)/, what);
        assert.doesNotMatch(lines[0], /signal SIG(SEGV|BUS|ILL|FPE)/, what);
      }
    });
  });

  it('lutham_runner: exit 0 with a finite checksum, or exit 1 ending in one lutham_runner: line', function () {
    if (!existsSync(RUNNER)) {
      console.log(`    skipped: ${RUNNER} not built (scripts/build-delegate.sh)`);
      this.skip();
    }
    for (const f of flips) {
      const r = spawnSync(RUNNER, ['--model', f.file, '--repeat', '1'], { encoding: 'latin1', timeout: 120_000 });
      const what = `${f.region} flip at ${f.offset} bit ${f.bit}: status ${r.status} signal ${r.signal}\n${r.stderr}`;
      assert.equal(r.signal, null, what);
      if (r.status === 0) {
        const m = /checksum: sum=(\S+) abs_sum=(\S+)/.exec(r.stdout);
        assert.ok(m && Number.isFinite(Number(m[1])) && Number.isFinite(Number(m[2])), what + r.stdout);
      } else {
        assert.equal(r.status, 1, what);
        const last = r.stderr.trim().split('\n').pop() ?? '';
        assert.match(last, /^lutham_runner: /, what);
      }
    }
  });
});
