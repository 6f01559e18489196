import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { LuthamError } from '../../ts/errors.js';
import { readPayload } from '../../ts/payload/index.js';
import { decodeCodebook, decodePayload } from '../../ts/payload/verify.js';
import { PteFile } from '../../ts/pte/file.js';
import { inspectPte, type InspectReport } from '../../ts/pte/inspect.js';
import { formatInspect } from '../../ts/render/inspect.js';
import { makeBadFiles, type BadFile } from './helpers/bad-files.js';
import { cleanupTemp, ROOT, type PtePair, type PyFacts } from './helpers/pte.js';
import { SMALL, smallPtes } from './helpers/session.js';
import { writeSyntheticPte } from './helpers/synthetic.js';
import { luthamAsync } from './helpers/cli.js';

describe('inspect: .pte reader against Python', function () {
  this.timeout(180_000); // the before hook exports with Python unless cached
  let pair: PtePair;
  let dense: InspectReport;
  let lutham: InspectReport;
  let fd: PyFacts;
  let fl: PyFacts;

  before(async () => {
    pair = await smallPtes();
    fd = pair.facts[pair.dense];
    fl = pair.facts[pair.lutham];
    dense = await inspectPte(pair.dense);
    lutham = await inspectPte(pair.lutham);
  });

  it('reads the header and program size that Python reads', () => {
    for (const [r, f] of [[dense, fd], [lutham, fl]] as const) {
      assert.equal(r.fileBytes, f.file_bytes);
      assert.equal(r.programBytes, f.program_size);
      assert.equal(r.extendedHeader?.segmentBaseOffset, f.segment_base_offset);
      assert.equal(r.extendedHeader?.segmentDataSize, f.segment_data_size);
    }
  });

  it('reports the same plans, values, inputs/outputs, operators and memory plan', () => {
    for (const [r, f] of [[dense, fd], [lutham, fl]] as const) {
      assert.equal(r.plans.length, f.plans.length);
      r.plans.forEach((p, i) => {
        const q = f.plans[i];
        assert.equal(p.name, q.name);
        assert.equal(p.valueCount, q.values);
        assert.deepEqual(p.inputs.map((v) => v.index), q.inputs);
        assert.deepEqual(p.outputs.map((v) => v.index), q.outputs);
        assert.deepEqual(p.operators, q.operators);
        assert.equal(p.instructionCount, q.instructions);
        assert.deepEqual(p.nonConstBufferSizes, q.non_const_buffer_sizes);
        assert.equal(p.plannedBytes, q.non_const_buffer_sizes.slice(1).reduce((a, b) => a + b, 0));
      });
    }
    assert.deepEqual(lutham.plans[0].inputs[0].tensor?.shape, [1, SMALL.widths[0]]);
    assert.deepEqual(lutham.plans[0].outputs[0].tensor?.shape, [1, SMALL.heads, SMALL.widths.at(-1)]);
  });

  it('reports the same delegates with their payload sizes and locations', () => {
    for (const [r, f] of [[dense, fd], [lutham, fl]] as const) {
      r.plans.forEach((p, i) => {
        assert.deepEqual(
          p.delegates.map((d) => ({ id: d.backendId, location: d.location, index: d.dataIndex, bytes: d.bytes })),
          f.plans[i].delegates.map((d) => ({ id: d.id, location: d.location, index: d.index, bytes: d.bytes })),
        );
      });
    }
    assert.equal(dense.plans[0].delegates.length, 0);
    assert.equal(lutham.plans[0].delegates.length, SMALL.heads * (SMALL.widths.length - 1));
  });

  it('reports the same segments and named data', () => {
    for (const [r, f] of [[dense, fd], [lutham, fl]] as const) {
      assert.deepEqual(
        r.segments.map((s) => ({ offset: s.offset - f.segment_base_offset, size: s.bytes })),
        f.segments,
      );
      assert.deepEqual(
        r.namedData.map((n) => ({ key: n.key, segment: n.segmentIndex, bytes: n.bytes })),
        f.named_data.map((n) => ({ key: n.key, segment: n.segment_index, bytes: n.bytes })),
      );
      for (const n of f.named_data) if (n.deserializer_bytes !== undefined) assert.equal(n.bytes, n.deserializer_bytes);
      assert.deepEqual(r.problems, []);
    }
    assert.equal(dense.constants.location, 'segment');
    assert.equal(dense.constants.bytes, fd.segments[fd.constant_segment.segment_index].size);
    assert.equal(dense.constants.bufferCount, fd.constant_segment.offsets.length - 1);
    assert.ok(dense.constants.usedBytes > 0 && dense.constants.usedBytes <= dense.constants.bytes);
  });

  it('decodes every LuthamBackend payload as Python does', async () => {
    const pyLayers = fl.plans.flatMap((p) => p.delegates.filter((d) => d.layer).map((d) => d.layer!));
    assert.equal(lutham.luthamLayers.length, pyLayers.length);
    lutham.luthamLayers.forEach((l, i) => {
      const q = pyLayers[i];
      assert.deepEqual(
        [l.schemaVersion, l.inFeatures, l.outFeatures, l.gridSize, l.splineOrder, l.codebookSize, l.codebookDim, l.indexBits, l.codebookKey],
        [q.schema_version, q.in, q.out, q.grid, q.order, q.K, q.dim, q.index_bits, q.codebook_key],
      );
      assert.deepEqual([l.gains.bits, l.biases.bits, l.baseWeight.bits], q.bits);
      if (q.r2 === null) assert.equal(l.r2, null);
      else assert.ok(Math.abs(l.r2! - q.r2) < 1e-6);
      for (const t of [l.gains, l.biases, l.baseWeight]) {
        assert.equal(t.scaleCount, t.bits === 32 ? 0 : Math.ceil(l.outFeatures / 16) * 16);
      }
      assert.equal(l.panelBytes, Math.ceil(l.outFeatures / 16) * l.inFeatures * l.recordBytes);
    });
    // Indices unpacked in TypeScript equal Python's.
    await PteFile.with(pair.lutham, async (pte) => {
      let k = 0;
      for (const d of lutham.plans[0].delegates) {
        const bytes = await pte.readSegment(d.dataIndex);
        const dec = decodePayload(bytes);
        assert.deepEqual(Array.from(dec.indices.slice(0, 32)), pyLayers[k++].indices);
        // A flipped bit in the edge data fails the checksum, with a typed one-line error.
        const flipped = Uint8Array.from(bytes);
        flipped[Math.floor(flipped.length / 2)] ^= 0x10;
        assert.throws(() => decodePayload(flipped), /checksum mismatch/);
        assert.ok(dec.indices.every((v) => v < dec.info.codebookSize));
        assert.equal(dec.knots.length, dec.info.inFeatures * (dec.info.gridSize + 2 * dec.info.splineOrder + 1));
      }
      for (const n of lutham.namedData) {
        const cb = decodeCodebook(await pte.readSegment(n.segmentIndex));
        assert.equal(cb.values.length, cb.info.size * cb.info.dim);
        // Codewords are unit-norm shapes.
        const row = cb.values.subarray(0, cb.info.dim);
        const norm = Math.hypot(...row);
        assert.ok(Math.abs(norm - 1) < 0.05, `codeword norm ${norm}`);
      }
    });
  });

  it('shows one codebook segment shared by all heads', () => {
    const layersPerHead = SMALL.widths.length - 1;
    assert.equal(lutham.namedData.length, layersPerHead);
    for (const n of lutham.namedData) {
      assert.equal(n.kind, 'lutham-codebook');
      assert.equal(n.codebook?.size, SMALL.codebook_size);
      assert.equal(n.usedBy.length, SMALL.heads, `${n.key} used by ${n.usedBy.length} delegates`);
      const segs = lutham.segments.filter((s) => s.uses.some((u) => u === `named data ${n.key}`));
      assert.equal(segs.length, 1);
    }
    const pyCodebooks = fl.named_data.filter((n) => n.codebook);
    assert.equal(pyCodebooks.length, layersPerHead);
    assert.equal(new Set(fl.plans[0].delegates.map((d) => d.layer!.codebook_key)).size, layersPerHead);
    assert.match(formatInspect(lutham), new RegExp(`${SMALL.heads} delegates: forward#0`));
  });

  it('gives JSON and a table', () => {
    const json = JSON.parse(JSON.stringify(lutham));
    assert.equal(json.luthamLayers.length, lutham.luthamLayers.length);
    const text = formatInspect(lutham);
    for (const s of ['LuthamBackend', 'LUTHAM layers', 'Named data (2)', 'non_const_buffer_sizes']) assert.ok(text.includes(s), s);
    assert.ok(formatInspect(dense).includes('Constants: '));
  });

  it('readPayload rejects a codebook and vice versa', async () => {
    const cbSeg = lutham.namedData[0].segmentIndex;
    const bytes = await PteFile.with(pair.lutham, (pte) => pte.readSegment(cbSeg));
    assert.throws(() => readPayload(bytes), (e: unknown) => e instanceof LuthamError && /not a LUTHAM payload.*"LTCB"/.test(e.message));
  });

  it('reads only the program part and the small segments it needs', async () => {
    // The file handle reader never loads constant data: the dense program part is what it holds.
    await PteFile.with(pair.dense, (pte) => {
      assert.equal(pte.programBytes.length, fd.program_size);
      assert.ok(pte.programBytes.length < fd.file_bytes);
    });
  });
});

describe('inspect: bad files', function () {
  this.timeout(180_000);
  let bad: BadFile[];

  before(async () => {
    const pair = await smallPtes();
    bad = await makeBadFiles(pair.lutham, pair.facts[pair.lutham]);
  });

  after(cleanupTemp);

  it('rejects each with a one-line LuthamError', async () => {
    for (const b of bad) {
      await assert.rejects(inspectPte(b.path), (e: unknown) => {
        assert.ok(e instanceof LuthamError, `${b.name}: ${(e as Error)?.stack}`);
        assert.ok(!e.message.includes('\n'), `${b.name}: multi-line message ${e.message}`);
        assert.match(e.message, b.expect, `${b.name}: ${e.message}`);
        return true;
      }, b.name);
    }
  });

  it('rejects a missing file and a directory', async () => {
    await assert.rejects(inspectPte(join(ROOT, 'no-such-file.pte')), (e: unknown) => e instanceof LuthamError && /no such file/.test(e.message));
    await assert.rejects(inspectPte(ROOT), (e: unknown) => e instanceof LuthamError && /directory/.test(e.message));
  });

  it('rejects a garbage payload buffer given directly', async () => {
    const { garbage } = await import('./helpers/bad-files.js');
    assert.throws(() => readPayload(garbage(100)), LuthamError);
    const fake = garbage(200, 3);
    fake.set([0x10, 0, 0, 0, 0x4c, 0x54, 0x48, 0x4d], 0); // root offset 16, "LTHM"
    assert.throws(() => readPayload(fake), LuthamError);
  });

  // Through the CLI: exit code 1, "lutham: ..." on stderr.
  it('the CLI prints one line and exits 1', async () => {
    const pair = await smallPtes();
    const runs = await Promise.all([...bad.slice(0, 4).map((b) => luthamAsync(['inspect', b.path])), luthamAsync(['inspect', pair.lutham, '--json'])]);
    for (const [i, b] of bad.slice(0, 4).entries()) {
      const r = runs[i];
      assert.equal(r.status, 1, `${b.name}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^lutham: [^\n]+\n$/, `${b.name}: ${r.stderr}`);
    }
    const ok = runs[4];
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).fileBytes, (await readFile(pair.lutham)).length);
  });
});

describe('inspect/compare: a 3 GB file in bounded memory', function () {
  this.timeout(120_000);
  const LIMIT = 200 * 1024 * 1024;
  let dir: string;
  let big: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lutham-big-'));
    big = join(dir, 'big.pte');
    // 750 float tensors of 512 x 2048 = 3 GB of constants, written sparse (instant, no disk).
    await writeSyntheticPte(big, 750, 512, 2048);
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function measure(args: string[]): { maxRssBytes: number; result: any } {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'test/ts/helpers/measure-rss.ts'), ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 100_000,
      maxBuffer: 64 << 20,
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  }

  it('inspect reads the 3 GB file with a peak RSS under 200 MB', () => {
    const m = measure(['inspect', big]);
    assert.ok(m.result.fileBytes > 3e9);
    assert.equal(m.result.constants.tensorCount, 750);
    assert.equal(m.result.constants.usedBytes, 750 * 512 * 2048 * 4);
    assert.ok(m.maxRssBytes < LIMIT, `peak RSS ${(m.maxRssBytes / 2 ** 20).toFixed(1)} MiB`);
  });

  it('compare against the SHARe-KAN file too', async () => {
    const pair = await smallPtes();
    const m = measure(['compare', big, pair.lutham]);
    assert.equal(m.result.dense.bytes.kanWeights, 750 * 512 * 2048 * 4);
    assert.equal(m.result.ratios.total, m.result.dense.fileBytes / m.result.lutham.fileBytes);
    assert.ok(m.maxRssBytes < LIMIT, `peak RSS ${(m.maxRssBytes / 2 ** 20).toFixed(1)} MiB`);
  });
});
