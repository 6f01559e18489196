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
  '--warmup', '0', '--repeat', '2', '--min-seconds', '0', '--bandwidth-mb', '16', '--cold', '--evict-mib', '8'];

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
    assert.deepEqual(result.modes, ['warm', 'cold']);
    assert.equal(result.evict_bytes, 8 * 2 ** 20);
    assert.equal(result.rows.length, BENCH_VARIANTS.length * 4);
    const bw = result.bandwidth;
    assert.ok(bw.bytes_per_second > 0 && bw.bytes_per_second >= bw.median_bytes_per_second && bw.threads >= 1);
    assert.equal(bw.buffer_bytes, 16 * 2 ** 20);
    for (const v of BENCH_VARIANTS) {
      const rows = result.rows.filter((row) => row.variant === v);
      assert.deepEqual(rows.map((row) => `${row.batch} ${row.mode}`), ['1 warm', '1 cold', '3 warm', '3 cold'], v);
      for (const row of rows) {
        assert.ok(row.median_ms > 0 && row.runs >= 2, v);
        assert.ok(row.peak_rss_bytes > row.model_rss_bytes && row.model_rss_bytes > 0, v);
        assert.ok(row.relative_l2_error_vs_eager !== null, v);
        assert.ok(row.read_bytes > 0, v);
        assert.ok(Math.abs(row.bound_ms - (row.read_bytes / bw.bytes_per_second) * 1e3) < 1e-12, v);
        assert.ok(Math.abs(row.x_bound - row.median_ms / row.bound_ms) < 1e-9, v);
        assert.equal(row.basis_free, v.startsWith('matmul-'), v);
        assert.equal(row.backend_median_ms !== undefined, v.startsWith('lutham-'), v);
        // Every .pte is timed again by lutham_runner (C++), at this batch (--batch on the
        // dynamic-batch program) and mode; eager has no program.
        assert.equal(row.runner_median_ms !== undefined, v !== 'eager', v);
        if (v !== 'eager') {
          assert.ok(row.runner_median_ms! > 0, v);
          assert.ok(Math.abs(row.runner_x_bound! - row.runner_median_ms! / row.bound_ms) < 1e-9, v);
          assert.equal(row.runner_backend_median_ms !== undefined, v.startsWith('lutham-'), v);
        }
      }
    }
    const at = (v: string, b: number, mode = 'warm') => result.rows.find((row) => row.variant === v && row.batch === b && row.mode === mode)!;
    // The weights the folded heads hold, as the matmuls alone read them: int8 + one fp32 scale per
    // row (24*9*8 + 8*9*3 weights), below what the .pte holds beside them (XNNPACK's graph).
    const int8Weights = 24 * 9 * 8 + 8 * 9 * 3 + 4 * (8 + 3);
    assert.ok(at('matmul-int8', 1).read_bytes >= int8Weights && at('matmul-int8', 1).read_bytes < int8Weights + 4096);
    assert.ok(at('matmul-fp32', 1).read_bytes >= 4 * (24 * 9 * 8 + 8 * 9 * 3));
    for (const b of [1, 3]) {
      for (const mode of ['warm', 'cold']) {
        assert.equal(at('lutham-int', b, mode).vs_lutham, 1);
        assert.equal(at('lutham-int', b, mode).runner_vs_lutham, 1);
        const m = at('matmul-int8', b, mode);
        assert.ok(Math.abs(m.runner_vs_lutham! - m.runner_median_ms! / at('lutham-int', b, mode).runner_median_ms!) < 1e-9);
      }
      assert.ok(Math.abs(at('dense', b).vs_lutham - at('dense', b).median_ms / at('lutham-int', b).median_ms) < 1e-9);
      // The matmuls alone compute the same function as eager when fed its features.
      assert.ok(at('matmul-fp32', b).relative_l2_error_vs_eager! < 1e-5);
      assert.ok(at('matmul-int8', b).relative_l2_error_vs_eager! < 0.1);
      // The same function everywhere: exact baselines match eager to rounding; int8 and LUTHAM
      // (compressed seeded heads) within their quantization error.
      assert.equal(at('eager', b).relative_l2_error_vs_eager, 0);
      assert.ok(at('dense', b).relative_l2_error_vs_eager! < 1e-5);
      assert.ok(at('folded-fp32', b).relative_l2_error_vs_eager! < 1e-5);
      assert.ok(at('folded-int8', b).relative_l2_error_vs_eager! < 0.1);
      for (const v of ['lutham-int', 'lutham-int8', 'lutham-fp32']) {
        const row = at(v, b);
        assert.ok(row.relative_l2_error_vs_eager! < 0.25, `${v} ${row.relative_l2_error_vs_eager}`);
        assert.ok(row.read_bytes > row.codebook_bytes! && row.codebook_bytes! > 0, v);
      }
      // The int8 mode reads the same edges (grouped records) and computes the same function
      // within its 8-bit table, silu and basis sums.
      assert.ok(Math.abs(at('lutham-int8', b).read_bytes - at('lutham-int', b).read_bytes) < 0.02 * at('lutham-int', b).read_bytes);
      assert.ok(Math.abs(at('lutham-int8', b).relative_l2_error_vs_eager! - at('lutham-int', b).relative_l2_error_vs_eager!) < 0.05);
      // Integer storage reads fewer bytes than float32 storage, and its file is smaller.
      assert.ok(at('lutham-int', b).read_bytes < at('lutham-fp32', b).read_bytes);
      assert.ok(at('lutham-int', b).file_bytes! < at('lutham-fp32', b).file_bytes!);
      assert.ok(at('folded-int8', b).file_bytes! < at('folded-fp32', b).file_bytes!);
    }
    const text = readFileSync(md, 'utf8');
    assert.ok(text.startsWith(`# before\n\n${BENCH_SECTION.begin}\n`) && text.endsWith(`${BENCH_SECTION.end}\n\nafter\n`));
    assert.ok(!text.includes('old numbers'));
    assert.ok(text.includes(result.markdown.trim()));
    assert.match(result.markdown, /\| lutham\.pte, LuthamBackend int \| 3 \| cold \| [\d.]+ ms \(kernel [\d.]+ ms\) \| 1\.00x \|/);
    assert.match(result.markdown, /basis for free/);
  });

  it('bad input: one line on stderr, exit 1, before anything runs', async () => {
    const noMarkers = join(dir, 'plain.md');
    writeFileSync(noMarkers, '# nothing to replace\n');
    const cases: [string[], RegExp][] = [
      [['bench', '--batch', '0'], /^lutham: --batch must be positive integers like 1,32, got 0\n$/],
      [['bench', '--batch', '1,x'], /^lutham: --batch must be comma-separated numbers/],
      [['bench', '--variants', 'eager,tflite'], /^lutham: unknown variant 'tflite'/],
      [['bench', '--repeat', '0'], /^lutham: --repeat must be an integer >= 1, got 0\n$/],
      [['bench', '--evict-mib', '0'], /^lutham: --evict-mib must be an integer >= 1, got 0\n$/],
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
