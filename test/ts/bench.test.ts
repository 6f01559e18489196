// lutham bench: the CI smoke test on a tiny model. No timing is asserted: the test checks that
// every variant ran on the same inputs and computes the same function, and what the report holds.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../ts/paths.js';
import { BENCH_SECTION, BENCH_VARIANTS, validateBenchOptions, type BenchResult } from '../../ts/lib/bench.js';
import { replaceSection } from '../../ts/lib/markdown.js';
import { LuthamError } from '../../ts/errors.js';
import { lutham as runCli, luthamAsync } from './helpers/cli.js';

const lutham = (args: string[]) => runCli(args, {}, 1_500_000);

const TINY = ['--heads', '1', '--widths', '24,8,3', '--grid', '5', '--codebook-size', '16', '--batch', '1,3',
  '--warmup', '0', '--repeat', '2', '--min-seconds', '0', '--bandwidth-mb', '16'];

describe('lutham bench', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'lutham-bench-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs every variant on a tiny model and updates the Markdown section', function () {
    this.timeout(1_600_000);
    const md = join(dir, 'BENCH.md');
    writeFileSync(md, `# before\n\n${BENCH_SECTION.begin}\nold numbers\n${BENCH_SECTION.end}\n\nafter\n`);
    const r = lutham(['bench', ...TINY, '--json', '--update', md, '--no-progress']);
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout) as BenchResult;
    assert.deepEqual(result.batches, [1, 3]);
    assert.equal(result.rows.length, BENCH_VARIANTS.length * 2);
    for (const v of BENCH_VARIANTS) {
      const rows = result.rows.filter((row) => row.variant === v);
      assert.deepEqual(rows.map((row) => row.batch), [1, 3], v);
      for (const row of rows) {
        assert.ok(row.median_ms > 0 && row.runs >= 2, v);
        assert.ok(row.peak_rss_bytes > row.model_rss_bytes && row.model_rss_bytes > 0, v);
        assert.ok(row.relative_l2_error_vs_eager !== null, v);
      }
    }
    const at = (v: string, b: number) => result.rows.find((row) => row.variant === v && row.batch === b)!;
    for (const b of [1, 3]) {
      assert.equal(at('lutham-int', b).vs_lutham, 1);
      assert.ok(Math.abs(at('dense', b).vs_lutham - at('dense', b).median_ms / at('lutham-int', b).median_ms) < 1e-9);
      // The same function everywhere: exact baselines match eager to rounding; int8 and LUTHAM
      // (compressed seeded heads) within their quantization error.
      assert.equal(at('eager', b).relative_l2_error_vs_eager, 0);
      assert.ok(at('dense', b).relative_l2_error_vs_eager! < 1e-5);
      assert.ok(at('folded-fp32', b).relative_l2_error_vs_eager! < 1e-5);
      assert.ok(at('folded-int8', b).relative_l2_error_vs_eager! < 0.1);
      for (const v of ['lutham-int', 'lutham-fp32']) {
        const row = at(v, b);
        assert.ok(row.relative_l2_error_vs_eager! < 0.25, `${v} ${row.relative_l2_error_vs_eager}`);
        assert.ok(row.kernel_read_bytes! > row.codebook_bytes! && row.codebook_bytes! > 0, v);
        assert.ok(Math.abs(row.bound_ms! - (row.kernel_read_bytes! / result.bandwidth.bytes_per_second) * 1e3) < 1e-12);
      }
      // Integer storage reads fewer bytes than float32 storage, and its file is smaller.
      assert.ok(at('lutham-int', b).kernel_read_bytes! < at('lutham-fp32', b).kernel_read_bytes!);
      assert.ok(at('lutham-int', b).file_bytes! < at('lutham-fp32', b).file_bytes!);
      assert.ok(at('folded-int8', b).file_bytes! < at('folded-fp32', b).file_bytes!);
    }
    assert.ok(result.bandwidth.bytes_per_second > 0);
    const text = readFileSync(md, 'utf8');
    assert.ok(text.startsWith(`# before\n\n${BENCH_SECTION.begin}\n`) && text.endsWith(`${BENCH_SECTION.end}\n\nafter\n`));
    assert.ok(!text.includes('old numbers'));
    assert.ok(text.includes(result.markdown.trim()));
    assert.match(result.markdown, /\| lutham\.pte, LuthamBackend int \| 3 \| [\d.]+ ms \| 1\.00x \|/);
  });

  it('bad input: one line on stderr, exit 1, before anything runs', async () => {
    const noMarkers = join(dir, 'plain.md');
    writeFileSync(noMarkers, '# nothing to replace\n');
    const cases: [string[], RegExp][] = [
      [['bench', '--batch', '0'], /^lutham: --batch must be positive integers like 1,32, got 0\n$/],
      [['bench', '--batch', '1,x'], /^lutham: --batch must be comma-separated numbers/],
      [['bench', '--variants', 'eager,tflite'], /^lutham: unknown variant 'tflite'/],
      [['bench', '--repeat', '0'], /^lutham: --repeat must be an integer >= 1, got 0\n$/],
      [['bench', '--update', noMarkers], /^lutham: .*plain\.md has no '<!-- lutham bench: begin/],
      [['bench', '--update', join(dir, 'missing.md')], /^lutham: --update: cannot read/],
    ];
    const runs = await Promise.all(cases.map(([args]) => luthamAsync(args)));
    for (const [i, [args, re]] of cases.entries()) {
      const r = runs[i];
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stdout, '');
    }
  });

  it('replaceSection keeps everything outside the markers', () => {
    const { begin, end } = BENCH_SECTION;
    const text = `a\n${begin}\nx\n${end}\nb\n`;
    assert.equal(replaceSection(text, 'new\n', BENCH_SECTION), `a\n${begin}\nnew\n${end}\nb\n`);
    assert.throws(() => replaceSection('no markers', 'x', BENCH_SECTION), LuthamError);
    assert.throws(() => validateBenchOptions({ widths: [8] }), /--widths needs at least two/);
    assert.doesNotThrow(() => validateBenchOptions({ heads: 2, batches: [1, 32], variants: ['eager', 'lutham-int'] }));
  });
});
