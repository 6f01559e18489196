import assert from 'node:assert/strict';

import { LuthamError } from '../../ts/errors.js';
import { breakdownPte, CATEGORIES, comparePte, type Breakdown, type Comparison } from '../../ts/pte/compare.js';
import { formatCompare } from '../../ts/render/compare.js';
import { inspectPte } from '../../ts/pte/inspect.js';
import { makeBadFiles } from './helpers/bad-files.js';
import { cleanupTemp, makePtes, type PtePair, type PyFacts } from './helpers/pte.js';
import { smallPtes } from './helpers/session.js';

function sum(b: Breakdown): number {
  return CATEGORIES.reduce((a, c) => a + b.bytes[c], 0);
}

describe('compare: Dense vs SHARe-KAN bytes', function () {
  this.timeout(180_000);
  let pair: PtePair;
  let c: Comparison;
  let fd: PyFacts;
  let fl: PyFacts;

  before(async () => {
    pair = await smallPtes();
    fd = pair.facts[pair.dense];
    fl = pair.facts[pair.lutham];
    c = await comparePte(pair.dense, pair.lutham);
  });

  after(cleanupTemp);

  it('puts every byte in exactly one category', () => {
    assert.equal(sum(c.dense), fd.file_bytes);
    assert.equal(sum(c.lutham), fl.file_bytes);
    for (const b of [c.dense, c.lutham]) for (const cat of CATEGORIES) assert.ok(b.bytes[cat] >= 0, `${cat} ${b.bytes[cat]}`);
  });

  it('has an overall ratio equal to the file size ratio', () => {
    assert.equal(c.ratios.total, fd.file_bytes / fl.file_bytes);
    const r = fd.file_bytes / fl.file_bytes;
    const shown = r >= 10 ? r.toFixed(1) : r.toFixed(2);
    const fmt = (n: number) => n.toLocaleString('en-US');
    assert.ok(formatCompare(c).includes(`${shown}x smaller (${fmt(fd.file_bytes)} / ${fmt(fl.file_bytes)} bytes)`), formatCompare(c));
  });

  it('counts LuthamBackend payloads, codebook segments and the program as Python sees them', () => {
    const payloads = fl.plans.flatMap((p) => p.delegates.filter((d) => d.id === 'LuthamBackend')).reduce((a, d) => a + d.bytes, 0);
    assert.equal(c.lutham.bytes.kanWeights, payloads);
    const codebooks = new Map(fl.named_data.filter((n) => n.codebook).map((n) => [n.segment_index, n.bytes]));
    assert.equal(c.lutham.bytes.codebook, [...codebooks.values()].reduce((a, b) => a + b, 0));
    assert.equal(c.lutham.codebookSegments, codebooks.size);
    assert.equal(c.lutham.bytes.program, fl.program_size); // nothing inline
    assert.equal(c.dense.bytes.program, fd.program_size);
    assert.equal(c.lutham.bytes.otherConstants, 0); // --backbone none: nothing outside the heads
    assert.equal(c.dense.bytes.otherConstants, 0);
    assert.equal(c.dense.bytes.codebook, 0);
    assert.equal(c.kanPart.lutham, c.lutham.bytes.kanWeights + c.lutham.bytes.codebook);
    assert.equal(c.kanPart.ratio, c.dense.bytes.kanWeights / c.kanPart.lutham);
  });

  it('counts the Dense constants as KAN weights, the rest of the constant segment as padding', () => {
    const seg = fd.segments[fd.constant_segment.segment_index].size;
    assert.ok(c.dense.bytes.kanWeights > 0 && c.dense.bytes.kanWeights <= seg);
    const gaps = fd.file_bytes - fd.program_size - fd.segments.reduce((a, s) => a + s.size, 0);
    assert.equal(c.dense.bytes.padding, gaps + (seg - c.dense.bytes.kanWeights));
  });

  it('reports planned memory from non_const_buffer_sizes', () => {
    const planned = (f: PyFacts) => f.plans.reduce((a, p) => a + p.non_const_buffer_sizes.slice(1).reduce((x, y) => x + y, 0), 0);
    assert.equal(c.dense.plannedBytes, planned(fd));
    assert.equal(c.lutham.plannedBytes, planned(fl));
    assert.equal(c.ratios.planned, planned(fd) / planned(fl));
  });

  it('prints a table and JSON', async () => {
    const text = formatCompare(c);
    for (const s of ['KAN weights', 'codebook', 'other constants', 'flatbuffer program', 'padding', 'planned memory']) assert.ok(text.includes(s), s);
    const json = JSON.parse(JSON.stringify(c));
    assert.equal(json.dense.fileBytes, fd.file_bytes);
    assert.equal(json.ratios.otherConstants, null);
    const single = await breakdownPte(pair.lutham);
    assert.deepEqual(single.bytes, c.lutham.bytes);
  });

  it('notes swapped arguments', async () => {
    const swapped = await comparePte(pair.lutham, pair.dense);
    assert.ok(swapped.notes.some((n) => n.includes('really the Dense file')));
    assert.equal(sum(swapped.dense), fl.file_bytes);
  });

  it('rejects bad files with a LuthamError', async () => {
    const bad = await makeBadFiles(pair.lutham, fl);
    for (const b of bad) {
      await assert.rejects(comparePte(pair.dense, b.path), (e: unknown) => e instanceof LuthamError && !e.message.includes('\n'), b.name);
    }
  });
});

// A backbone makes "other constants": exporting one takes minutes, so only on request.
describe('compare: with a backbone (LUTHAM_TEST_BACKBONE=1)', function () {
  this.timeout(900_000);
  let dense: string;
  let lutham: string;

  before(async function () {
    if (!process.env.LUTHAM_TEST_BACKBONE) this.skip();
    const { dir } = await makePtes([{ name: 'mnv3', backbone: 'mobilenet_v3_small', heads: 2, widths: [576, 16, 5], grid: 5, codebook_size: 64, image_size: 64 }]);
    dense = `${dir}/mnv3-dense.pte`;
    lutham = `${dir}/mnv3-lutham.pte`;
  });

  it('counts the backbone (an XNNPACK delegate in both files) as other constants in both files', async () => {
    const c = await comparePte(dense, lutham);
    const l = await inspectPte(lutham);
    assert.ok(c.lutham.bytes.otherConstants > 0);
    assert.ok(l.plans[0].delegates.some((d) => d.backendId === 'XnnpackBackend'));
    // Same backbone weights in both; XNNPACK may cut the backbone into different partitions in the
    // two graphs (measured: 3,691,112 vs 3,709,112 B for this model), so only nearly equal.
    assert.ok(Math.abs(c.dense.bytes.otherConstants - c.lutham.bytes.otherConstants) < 0.01 * c.lutham.bytes.otherConstants);
    assert.ok(c.dense.bytes.kanWeights > c.lutham.bytes.kanWeights);
    assert.equal(sum(c.dense), c.dense.fileBytes);
    assert.equal(sum(c.lutham), c.lutham.fileBytes);
  });
});
