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

import { InstructionArguments, KernelCall, Program } from '../../ts/generated/executorch-flatbuffer.js';
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

  /** The session lutham.pte, its bytes and the generated reader's view of plan 0. */
  async function sessionPlan() {
    const bytes = Buffer.from(readFileSync((await smallPtes()).lutham));
    const bb = new flatbuffers.ByteBuffer(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
    return { bytes, bb, plan: Program.getRootAsProgram(bb).executionPlan(0)! };
  }

  /** `lutham run` on `file`: no signal, exit 1, one stderr line matching `line`. */
  async function runFailsWithOneLine(file: string, line: RegExp): Promise<void> {
    const cli = await luthamAsync(['run', file, '--repeat', '1']);
    assert.equal(cli.signal, null, cli.stderr);
    assert.equal(cli.status, 1, cli.stderr);
    assert.equal(cli.stderr.split('\n').filter(Boolean).length, 1, cli.stderr);
    assert.match(cli.stderr, line);
  }

  // Found by a byte flip of the session's 3-head file (offset 1077, bit 2): an operator whose
  // name is absent is logged at Method::init ("Missing operator name") and then called by
  // Method::execute (SIGSEGV). Both readers refuse it first.
  it('an operator without a name: exit 1 with one line, no crash', async () => {
    const { bytes, bb, plan } = await sessionPlan();
    const op = plan.operators(0)!;
    const pos = (op as unknown as { bb_pos: number }).bb_pos;
    bytes.writeUInt16LE(0, pos - bb.readInt32(pos) + 4); // field 0 of Operator: name
    const file = join(dir, 'no-operator-name.pte');
    writeFileSync(file, bytes);
    runnerFailsWithOneLine(file, /^lutham_runner: .*no-operator-name\.pte: operator 0 has no name \(plan 0\)$/);
    await runFailsWithOneLine(file, /^lutham: .*no-operator-name\.pte is corrupt: operator 0 of plan 0 has no name\n$/);
  });

  // Found by a byte flip (offset 679, bit 1): a memory-plan size with a high bit set; Module
  // allocates the plan up front and std::bad_alloc ended lutham_runner (terminate, SIGABRT).
  it('a memory plan larger than the machine: exit 1 with one line, no bad_alloc', async () => {
    const { bytes, bb, plan } = await sessionPlan();
    assert.ok(plan.nonConstBufferSizesLength() >= 2, 'the session program plans no memory');
    // the generated reader has no array view of an int64 vector: find entry 1 as it does
    const pos = (plan as unknown as { bb_pos: number }).bb_pos;
    const entry1 = bb.__vector(pos + bb.__offset(pos, 20)) + 8; // field 8 of ExecutionPlan: non_const_buffer_sizes
    assert.equal(bb.readInt64(entry1), plan.nonConstBufferSizes(1));
    bytes.writeBigInt64LE(1n << 56n, entry1); // buffer 1
    const file = join(dir, 'huge-plan.pte');
    writeFileSync(file, bytes);
    runnerFailsWithOneLine(file, /^lutham_runner: .*huge-plan\.pte: the memory plan asks for 72057594037927936 bytes in buffer 1, more than this machine's \d+ \(plan 0\)$/);
    await runFailsWithOneLine(file, /^lutham: .*huge-plan\.pte: the memory plan of plan 0 asks for 72057594037927936 bytes, more than this machine's \d+\n$/);
  });

  // Found by a byte flip (offset 1256, bit 0): a kernel argument index that points at a value of
  // another type. ExecuTorch's EValue accessors ET_CHECK the type and abort; no schema-free check
  // can see it, so lutham_runner turns the abort into its one line (runner/fatal_check.cpp) and
  // `lutham run` names ExecuTorch's failed check as the cause.
  it('a kernel argument of the wrong type: the failed check as the one line, exit 1', async () => {
    const { bytes, plan } = await sessionPlan();
    const ops = Array.from({ length: plan.operatorsLength() }, (_, i) => plan.operators(i)!.name());
    const cat = ops.indexOf('aten::cat');
    assert.ok(cat >= 0, `the session program has no aten::cat (${ops.join(', ')})`);
    const chain = plan.chains(0)!;
    let args: Int32Array | null = null;
    for (let i = 0; i < chain.instructionsLength() && !args; i++) {
      const ins = chain.instructions(i)!;
      if (ins.instrArgsType() !== InstructionArguments.KernelCall) continue;
      const call = ins.instrArgs(new KernelCall()) as KernelCall;
      if (call.opIndex() === cat) args = call.argsArray();
    }
    assert.ok(args && args.length >= 2, 'no aten::cat call in chain 0');
    // cat.out(Tensor[] tensors, int dim, Tensor out): the dim argument becomes the tensor list
    bytes.writeInt32LE(args[0], args.byteOffset - bytes.byteOffset + 4);
    const file = join(dir, 'wrong-type.pte');
    writeFileSync(file, bytes);
    runnerFailsWithOneLine(file, /^lutham_runner: ExecuTorch stopped on a failed check \(In function toInt\(\), assert failed \(isInt\(\)\): EValue is not an int\.\): the program is corrupt/);
    const cli = await luthamAsync(['run', file, '--repeat', '1']);
    assert.equal(cli.signal, null, cli.stderr);
    assert.equal(cli.status, 1, cli.stderr);
    assert.match(cli.stderr, /^lutham: the Python side exited unexpectedly \(signal SIGABRT\): In function toInt\(\), assert failed \(isInt\(\)\): EValue is not an int\.\n$/);
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

  it('lutham_runner on the good file: no cpuinfo log lines on stderr', function () {
    if (!existsSync(RUNNER)) {
      console.log(`    skipped: ${RUNNER} not built (scripts/build-delegate.sh)`);
      this.skip();
    }
    return smallPtes().then(({ lutham }) => {
      const r = spawnSync(RUNNER, ['--model', lutham, '--repeat', '1'], { encoding: 'latin1', timeout: 120_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /cpuinfo/);
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
