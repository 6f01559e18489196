// ts/render: the one byte formatter, the one table, printf-style numbers as Python printed them,
// and the texts of run, bench and eval built from data alone (no Python needed).
import assert from 'node:assert/strict';

import type { BenchResult } from '../../ts/lib/bench.js';
import type { RunResult } from '../../ts/lib/run.js';
import { benchMarkdown } from '../../ts/render/bench.js';
import { formatEval, modelTables } from '../../ts/render/eval.js';
import { formatRun, runWarnings } from '../../ts/render/run.js';
import { bytesCell, formatBytes, formatExp, formatG, markdownTable, table } from '../../ts/render/text.js';
import { fixtureResults } from './helpers/eval-results.js';

describe('render: text building blocks', () => {
  it('formatBytes: SI units everywhere', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(999), '999 B');
    assert.equal(formatBytes(1000), '1.00 kB');
    assert.equal(formatBytes(1536), '1.54 kB');
    assert.equal(formatBytes(254_012_345), '254.0 MB');
    assert.equal(formatBytes(3_070_000_000), '3.07 GB');
    assert.equal(bytesCell(512), '512 B');
    assert.equal(bytesCell(1_234_567), '1,234,567 (1.23 MB)');
  });

  it("formatG and formatExp print what Python's %.9g and %.2e print", () => {
    // Expected strings from CPython 3.11: '%.9g' % v, '%.2e' % v.
    const cases: [number | string, string, string][] = [
      [0, '0', '0.00e+00'], [-0, '-0', '-0.00e+00'], [1, '1', '1.00e+00'], [0.1, '0.1', '1.00e-01'],
      [1e-5, '1e-05', '1.00e-05'], [0.0001, '0.0001', '1.00e-04'], [0.00012345, '0.00012345', '1.23e-04'],
      [123456789, '123456789', '1.23e+08'], [1234567890, '1.23456789e+09', '1.23e+09'], [9.999999995, '9.99999999', '1.00e+01'],
      [3.14159265358979, '3.14159265', '3.14e+00'], [-2.5e10, '-2.5e+10', '-2.50e+10'], [5e-324, '4.94065646e-324', '4.94e-324'],
      ['NaN', 'nan', 'nan'], ['Infinity', 'inf', 'inf'], ['-Infinity', '-inf', '-inf'], [NaN, 'nan', 'nan'],
    ];
    for (const [v, g, e] of cases) {
      assert.equal(formatG(v, 9), g, `%.9g of ${v}`);
      assert.equal(formatExp(v, 2), e, `%.2e of ${v}`);
    }
  });

  it('table: a rule under the header, the first column left, the others right, no trailing blanks', () => {
    assert.equal(table(['name', 'n'], [['a', 1], ['bbb', 22]]), 'name   n\n----  --\na      1\nbbb   22');
    assert.equal(table(['#', 'use'], [['1', 'x']], [0]), '#  use\n-  ---\n1  x');
    assert.equal(markdownTable(['a', 'b'], [[1, 'x']]), '| a | b |\n| --- | --- |\n| 1 | x |');
  });
});

describe('render: run, bench and eval from their data', () => {
  const run: RunResult = {
    model: 'm.pte', method: 'forward', outputs: [[1, 3, 4]], dtypes: ['float32'], sum: 1.2345678912345, abs_sum: 'NaN', median_ms: 0.123456,
    repeat: 10, output: null, head_ms: 0.1, backbone_ms: 0.02, split: 'head: ...', non_finite_inputs: [0, 2], non_finite_outputs: 3,
  };

  it('formatRun prints what lutham.runtime.format_run printed, its warnings apart (runWarnings, for stderr)', () => {
    assert.equal(formatRun(run), [
      'output 0: float32 [1, 3, 4]',
      'checksum: sum=1.23456789 abs_sum=nan',
      'median: 0.1235 ms over 10 runs',
      '  backbone: 0.0200 ms, KAN heads (LuthamBackend): 0.1000 ms',
    ].join('\n'));
    assert.deepEqual(runWarnings(run), ['warning: input 1 has 2 NaN/Inf value(s)', 'warning: 3 output value(s) are NaN/Inf']);
    assert.deepEqual(runWarnings({ ...run, non_finite_inputs: [0, 0], non_finite_outputs: 0 }), []);
    assert.equal(formatRun({ ...run, head_ms: null, backbone_ms: null, non_finite_inputs: [0, 0], non_finite_outputs: 0, abs_sum: 2 }),
      'output 0: float32 [1, 3, 4]\nchecksum: sum=1.23456789 abs_sum=2\nmedian: 0.1235 ms over 10 runs');
    // Another method is named first; a head has no backbone: the rest of its run is glue.
    assert.equal(formatRun({ ...run, method: 'head_3', outputs: [[1, 4]] }).split('\n').filter((l) => !l.startsWith('checksum')).join('\n'), [
      'method: head_3',
      'output 0: float32 [1, 4]',
      'median: 0.1235 ms over 10 runs',
      '  outside LuthamBackend: 0.0200 ms, KAN heads (LuthamBackend): 0.1000 ms',
    ].join('\n'));
  });

  it('benchMarkdown: one row per variant, batch and mode, sizes in SI units, each row against its own bound', () => {
    const row = (variant: BenchResult['rows'][number]['variant'], label: string, batch: number, mode: 'warm' | 'cold') => ({
      variant, label, batch, mode, median_ms: 1.5 * batch, runs: 10, vs_lutham: 1.25, peak_rss_bytes: 412_300_000, model_rss_bytes: 1_234_567,
      file_bytes: variant === 'eager' ? null : 45_678, relative_l2_error_vs_eager: variant === 'eager' ? 0 : 1.234e-5,
      basis_free: variant.startsWith('matmul-'), export_peak_rss_bytes: null, read_bytes: 2_345_678, read_bytes_method: 'x',
      bound_ms: 0.1, x_bound: 15 * batch,
      ...(variant.startsWith('lutham-') ? { backend_median_ms: 1.2 * batch, backend_x_bound: 12 * batch, codebook_bytes: 2_048 } : {}),
      // lutham_runner's figures for every .pte (eager has none; LUTHAM also its kernel time).
      ...(variant === 'eager' ? {} : { runner_median_ms: 0.5 * batch, runner_vs_lutham: 0.8, runner_x_bound: 5 * batch }),
      ...(variant.startsWith('lutham-') ? { runner_backend_median_ms: 0.4 * batch } : {}),
    });
    const result: Omit<BenchResult, 'markdown'> = {
      model: { heads: 1, widths: [24, 8, 3], grid: 5, order: 3, seed: 0, backbone: 'none' }, batches: [1, 3], modes: ['warm', 'cold'],
      evict_bytes: 512 * 2 ** 20, warmup: 3, repeat: 10, reference: 'lutham-int',
      bandwidth: { bytes_per_second: 25.5e9, median_bytes_per_second: 24e9, threads: 2, buffer_bytes: 2 ** 30, rounds: 7, method: 'lutham_membw' },
      machine: { cpu: 'AMD EPYC', flags: ['fpu', 'avx2', 'avx512f'], cores: 2, llc_bytes: 32 * 2 ** 20, torch_threads: 2, load_average_1min: 1.26 },
      rows: [row('eager', 'PyTorch eager (efficient-kan)', 1, 'warm'), row('matmul-int8', 'folded matmuls alone, XNNPACK int8 (basis for free)', 1, 'cold'),
        row('lutham-int', 'lutham.pte, LuthamBackend int', 3, 'cold')],
    };
    const md = benchMarkdown(result).split('\n');
    assert.match(md[0], /^1 head\(s\) 24 -> 8 -> 3, grid 5, order 3, no backbone; AMD EPYC \(avx2 avx512f\), 2 cores, LLC 33\.55 MB per sysfs/);
    assert.match(md[0], /cold: 536\.9 MB written before every run\.$/);
    assert.ok(md.includes('| PyTorch eager (efficient-kan) | 1 | warm | 1.500 ms | 1.25x | 2.35 MB | 0.100 ms | 15.00x | - | 412.3 MB (1.23 MB) | - | 0.00e+00 |'), md.join('\n'));
    assert.ok(md.includes('| folded matmuls alone, XNNPACK int8 (basis for free) | 1 | cold | 1.500 ms | 1.25x | 2.35 MB | 0.100 ms | 15.00x | 0.500 ms, 0.80x, 5.00x | 412.3 MB (1.23 MB) | 45.68 kB | 1.23e-05 |'), md.join('\n'));
    assert.ok(md.includes('| lutham.pte, LuthamBackend int | 3 | cold | 4.500 ms (kernel 3.600 ms) | 1.25x | 2.35 MB | 0.100 ms | 45.00x | 1.500 ms (kernel 1.200 ms), 0.80x, 15.00x | 412.3 MB (1.23 MB) | 45.68 kB | 1.23e-05 |'), md.join('\n'));
    assert.ok(md.some((l) => l.startsWith('lutham_runner times each .pte as a C++ app runs it')), md.join('\n'));
    assert.ok(md.some((l) => l.startsWith('Read bandwidth: 25.50 GB/s (median round 24.00 GB/s; lutham_membw, 1.07 GB buffer)')), md.join('\n'));
    assert.ok(md.some((l) => l.includes('get their basis for free')));
    assert.ok(!benchMarkdown({ ...result, rows: result.rows.filter((r) => !r.basis_free) }).includes('basis for free'));
  });

  it("eval's terminal tables are modelTables' tables, the spec the report and BENCHMARKS.md use", () => {
    const r = fixtureResults();
    const text = formatEval(r);
    for (const m of r.models) {
      const t = modelTables(m, r.settings);
      for (const spec of [t.table1, t.saturation, t.pruning, t.baselines]) {
        assert.ok(text.includes(table(spec.header, spec.rows)), `${m.kind}: ${spec.header.join(', ')}`);
      }
    }
  });
});
