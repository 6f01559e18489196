// ts/payload: the format's numbers once (checked against the schema), the record-size rule, and
// the full check `lutham inspect --verify` runs: a flipped byte, an index out of range (padding
// lanes included) and a codebook that does not hash to its key are all caught.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Payload } from '../../ts/generated/lutham/payload/payload.js';
import {
  CODEBOOK_IDENTIFIER, FLOAT_BITS, PANEL_WIDTH, PAYLOAD_IDENTIFIER, SCHEMA_VERSION, readPayload, recordBytes,
} from '../../ts/payload/index.js';
import { INT8_GROUP, SCHEMA_VERSION_INT8, int8RecordBytes } from '../../ts/payload/format.js';
import { decodePayload, storedDataChecksum } from '../../ts/payload/verify.js';
import { CheckedByteBuffer } from '../../ts/pte/checked-buffer.js';
import { inspectPte } from '../../ts/pte/inspect.js';
import { assertOneLine, HANG_GUARD_MS, luthamAsync } from './helpers/cli.js';
import { ROOT, type PtePair } from './helpers/pte.js';
import { smallPtes } from './helpers/session.js';

const SCHEMA = readFileSync(join(ROOT, 'schema', 'lutham.fbs'), 'utf8');

describe('payload: the format in one place', () => {
  it('the constants are the schema\'s', () => {
    assert.match(SCHEMA, new RegExp(`file_identifier "${PAYLOAD_IDENTIFIER}";`));
    assert.match(SCHEMA, new RegExp(`a \`Codebook\` buffer \\(identifier "${CODEBOOK_IDENTIFIER}"\\)`));
    assert.match(SCHEMA, new RegExp(`table EdgePanels \\{\\n  width: uint32 = ${PANEL_WIDTH};`));
    assert.match(SCHEMA, new RegExp(`table EdgeValues \\{\\n  bits: ubyte = ${FLOAT_BITS};`));
    assert.match(SCHEMA, new RegExp(`layout the kernel streams \\(schema version ${SCHEMA_VERSION}; \`group\` since ${SCHEMA_VERSION_INT8}\\)`));
    assert.match(SCHEMA, new RegExp(`  /// Inputs per record \\(schema version ${SCHEMA_VERSION_INT8}\\)\\. 1: the layout above\\. ${INT8_GROUP} `));
    assert.match(SCHEMA, /  group: uint32 = 1;\n/);
    assert.match(SCHEMA, /enum ComputeMode : ubyte \{ Float = 0, Int8 = 1 \}/);
  });

  it('int8RecordBytes: an index plane, then a plane per byte of the words', () => {
    assert.equal(int8RecordBytes(6 + 4 + 5), 16 * 4 * (1 + 2));
    assert.equal(int8RecordBytes(8 + 8 + 8), 16 * 4 * (1 + 4));
  });

  it('recordBytes: PANEL_WIDTH indices, then one word (or three floats) per lane', () => {
    assert.equal(recordBytes(7, false, 6 + 4 + 5), 16 * (1 + 2)); // the default: uint8 index, uint16 word
    assert.equal(recordBytes(9, false, 6 + 4 + 5), 16 * (2 + 2));
    assert.equal(recordBytes(16, false, 8 + 8 + 8), 16 * (2 + 4));
    assert.equal(recordBytes(6, true, 96), 16 * (1 + 12));
  });
});

describe('payload: the int8 mode\'s grouped records', function () {
  this.timeout(HANG_GUARD_MS);
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'lutham-int8-')); });
  after(() => rm(dir, { recursive: true, force: true }));

  it('decode to the same edges as the float mode\'s records of the same model, and verify', async () => {
    // 42 inputs: the last group record of each panel is padded.
    const common = ['export', '--backbone', 'none', '--heads', '2', '--widths', '42,20,5', '--grid', '5', '--codebook-size', '32',
      '--no-int8-baseline', '--no-progress', '--json'];
    for (const [name, extra] of [['float', []], ['int8', ['--compute', 'int8']]] as const) {
      const r = await luthamAsync([...common, ...extra, '--out', join(dir, name)]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).compute, name);
    }
    const reports = await Promise.all(['float', 'int8'].map((n) => inspectPte(join(dir, n, 'lutham.pte'), { verify: true })));
    for (const rep of reports) assert.deepEqual(rep.verified!.failures, []);
    const [f, q] = reports.map((rep) => rep.luthamLayers);
    assert.equal(f.length, 4);
    assert.deepEqual(f.map((l) => [l.compute, l.group, l.schemaVersion]), Array(4).fill(['float', 1, SCHEMA_VERSION]));
    assert.deepEqual(q.map((l) => [l.compute, l.group, l.schemaVersion]), Array(4).fill(['int8', INT8_GROUP, SCHEMA_VERSION_INT8]));
    const bytes = (n: string) => readFileSync(join(dir, n, 'lutham.pte'));
    const payloadsOf = (file: Buffer) => {
      const out: Uint8Array[] = [];
      for (let at = file.indexOf(PAYLOAD_IDENTIFIER); at >= 4; at = file.indexOf(PAYLOAD_IDENTIFIER, at + 1)) out.push(file.subarray(at - 4));
      return out;
    };
    const [fp, qp] = [payloadsOf(bytes('float')), payloadsOf(bytes('int8'))];
    assert.equal(fp.length, 4);
    for (let i = 0; i < 4; i++) {
      const a = decodePayload(fp[i]), b = decodePayload(qp[i]);
      assert.deepEqual(Array.from(b.indices), Array.from(a.indices));
      assert.deepEqual(Array.from(b.gains), Array.from(a.gains));
      assert.deepEqual(Array.from(b.biases), Array.from(a.biases));
      assert.deepEqual(Array.from(b.baseWeight), Array.from(a.baseWeight));
    }
  });
});

describe('payload: inspect --verify', function () {
  this.timeout(HANG_GUARD_MS);
  let pair: PtePair;
  let dir: string;
  /** Absolute file ranges of the LuthamBackend payload segments (in delegate order), and of the codebooks. */
  let payloads: [number, number][];
  let codebooks: [number, number][];
  /** Delegates of a layer with a full panel (64 -> 16) and of one with padding lanes (16 -> 5). */
  let full: number;
  let padded: number;
  before(async () => {
    pair = await smallPtes();
    dir = await mkdtemp(join(tmpdir(), 'lutham-verify-'));
    const f = pair.facts[pair.lutham];
    const range = (i: number): [number, number] => [f.segment_base_offset + f.segments[i].offset, f.segments[i].size];
    const delegates = f.plans[0].delegates;
    assert.ok(delegates.every((d) => d.id === 'LuthamBackend' && d.location === 'segment'));
    payloads = delegates.map((d) => range(d.index));
    full = delegates.findIndex((d) => d.layer!.out === 16);
    padded = delegates.findIndex((d) => d.layer!.out === 5);
    codebooks = f.named_data.filter((n) => n.codebook).map((n) => range(n.segment_index));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** The session's lutham.pte with `edit` applied to a copy, written to `name`. */
  function mutant(name: string, edit: (file: Uint8Array) => void): string {
    const bytes = new Uint8Array(readFileSync(pair.lutham));
    edit(bytes);
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  }

  /**
   * Sets the index of lane `lane` in the first record of payload `p` to `value` and rewrites the
   * stored checksum to match, so only the index check can catch it.
   */
  function badIndex(file: Uint8Array, p: number, lane: number, value: number): void {
    const [at, size] = payloads[p];
    const payload = file.subarray(at, at + size);
    const layer = Payload.getRootAsPayload(new CheckedByteBuffer(payload)).layer()!;
    const stored = layer.checksum();
    layer.panels()!.dataArray()![lane] = value; // a view into `file` (uint8 indices at K = 64)
    const le = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
    const old = le(stored);
    const hits = [];
    for (let i = 0; i + 4 <= payload.length; i++) if (old.every((b, k) => payload[i + k] === b)) hits.push(i);
    assert.equal(hits.length, 1, 'the checksum field is not unique in the payload');
    payload.set(le(storedDataChecksum(payload)), hits[0]);
  }

  it('a good file: every payload and codebook checked, nothing failed', async () => {
    const r = await inspectPte(pair.lutham, { verify: true });
    assert.deepEqual(r.verified, { payloads: payloads.length, codebooks: codebooks.length, failures: [] });
    assert.equal(r.luthamLayers.length, payloads.length);
    for (const l of r.luthamLayers) assert.equal(l.schemaVersion, SCHEMA_VERSION);
    assert.equal((await inspectPte(pair.lutham)).verified, undefined, 'plain inspect decodes nothing');
  });

  it('a flipped bit in a payload\'s edge data fails its CRC-32, naming the delegate', async () => {
    const [at, size] = payloads[1];
    const path = mutant('flipped-payload.pte', (f) => { f[at + Math.floor(size / 2)] ^= 0x10; });
    const r = await inspectPte(path, { verify: true });
    assert.equal(r.verified!.failures.length, 1, r.verified!.failures.join('\n'));
    assert.match(r.verified!.failures[0], /LuthamBackend payload of delegate forward#1: checksum mismatch/);
  });

  it('an index >= K is caught with a consistent checksum, in a real lane and in a padding lane', async () => {
    const real = await inspectPte(mutant('index-real.pte', (f) => badIndex(f, full, 3, 64)), { verify: true });
    assert.deepEqual(real.verified!.failures.map((m) => m.replace(/^.*: LuthamBackend payload of /, '')),
      [`delegate forward#${full}: index 64 of edge (output 3, input 0) is >= codebook size 64`]);
    // Lane 15 of a 5-output layer is padding: the runtime reads its index too.
    const pad = await inspectPte(mutant('index-padding.pte', (f) => badIndex(f, padded, 15, 200)), { verify: true });
    assert.deepEqual(pad.verified!.failures.map((m) => m.replace(/^.*: LuthamBackend payload of /, '')),
      [`delegate forward#${padded}: index 200 of edge (output 15, input 0) is >= codebook size 64`]);
  });

  it('a codebook whose bytes do not hash to its key is caught', async () => {
    const [at, size] = codebooks[0];
    const path = mutant('flipped-codebook.pte', (f) => { f[at + Math.floor(size / 2)] ^= 0x01; });
    const r = await inspectPte(path, { verify: true });
    assert.equal(r.verified!.failures.length, 1, r.verified!.failures.join('\n'));
    assert.match(r.verified!.failures[0], /codebook lutham\/codebook\/sha256-[0-9a-f]{64}: bytes do not match the key's sha256/);
  });

  it('the CLI: --verify prints the report, then one line and exit 1 on a failure', async () => {
    const [at, size] = payloads[0];
    const path = mutant('flipped-cli.pte', (f) => { f[at + Math.floor(size / 2)] ^= 0x04; });
    const [good, bad] = await Promise.all([luthamAsync(['inspect', pair.lutham, '--verify']), luthamAsync(['inspect', path, '--verify'])]);
    assert.equal(good.status, 0, good.stderr);
    assert.match(good.stdout, /\nVerified: 6 LUTHAM payloads \(CRC-32, every index\) and 2 codebooks \(values, SHA-256 of the key\): all good\n$/);
    assertOneLine(bad, /^lutham: --verify: 1 check\(s\) failed, the first: .*flipped-cli\.pte: LuthamBackend payload of delegate forward#0: checksum mismatch/);
    assert.match(bad.stdout, /\nVerify FAILED: 1 of the checks on 6 payloads and 2 codebooks:\n  - /);
  });

  it('decodePayload: what a reader checks before it decodes', async () => {
    const bytes = new Uint8Array(readFileSync(pair.lutham)).subarray(payloads[0][0], payloads[0][0] + payloads[0][1]);
    assert.equal(decodePayload(bytes).info.checksum, storedDataChecksum(bytes));
    assert.deepEqual(decodePayload(bytes).info, readPayload(bytes));
  });
});
