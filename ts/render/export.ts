// The text of `lutham export`: the Dense vs SHARe-KAN table and what the files hold.
import { join } from 'node:path';
import type { ExportReport } from '../lib/export.js';
import { formatBytes, table } from './text.js';
import { escapeText } from './escape.js';

/** The Dense vs SHARe-KAN table, sizes read back from the written files (ts/pte/compare.ts). */
/** outDir: where the files are (the report's paths are relative to it). */
export function formatExport(r: ExportReport, outDir?: string): string {
  const at = (p: string) => escapeText(outDir ? join(outDir, p) : p);
  const f = r.files;
  const x = (v: number | null) => (v === null ? '-' : `${v.toFixed(2)}x`);
  const r2 = r.layers.map((l) => `${escapeText(l.name)} ${l.r2.toFixed(4)}`).join(', ');
  const lines = [
    table(
      ['', 'file', 'KAN part', 'ratio (file)', 'ratio (KAN)', 'R^2 (min)', 'output error'],
      [
        ['Dense', formatBytes(f.dense.fileBytes), formatBytes(f.kanPart.dense), '1.00x', '1.00x', '1', '0'],
        ...(r.dense_int8_xnnpack
          ? [['Dense int8 (XNNPACK)', formatBytes(r.dense_int8_xnnpack.file_bytes), '-', x(f.dense.fileBytes / r.dense_int8_xnnpack.file_bytes), '-', '-', '-']]
          : []),
        ['SHARe-KAN', formatBytes(f.lutham.fileBytes + (f.external?.fileBytes ?? 0)), formatBytes(f.kanPart.lutham), x(f.ratios.total), x(f.kanPart.ratio),
          Math.min(...r.layers.map((l) => l.r2)).toFixed(4), r.output_relative_l2_error.toExponential(2)],
      ],
    ),
    '',
    `dense.pte  ${at(r.dense.path)}`,
    `lutham.pte ${at(r.lutham.path)} (${f.lutham.luthamDelegates} LuthamBackend delegates, ${f.lutham.codebookSegments} codebook segment(s))`,
    ...(r.compute === 'int8'
      ? ['compute: int8 (LuthamBackend quantizes the coefficient table, silu and the basis sums to 8 bits; the error column is this mode\'s)']
      : []),
    ...(r.lutham.external_data && f.external
      ? [`lutham.ptd ${at(r.lutham.external_data.path)} (${formatBytes(f.external.fileBytes)}: the codebooks; run lutham.pte with --data this file)`]
      : []),
    ...(r.lutham.methods
      ? [`methods    ${methodList(r.lutham.methods)} (every weight and codebook stored once; run one with --method NAME)`]
      : []),
    ...(r.lutham.etrecord
      ? [`lutham.etrecord ${at(r.lutham.etrecord.path)} (${formatBytes(r.lutham.etrecord.file_bytes)}: ETRecord; run --profile names the layers from it)`]
      : []),
    ...(r.codebooks_from ? [`codebooks reused from ${at(r.codebooks_from.path)}: ${Object.entries(r.codebooks_from.reused).map(([g, k]) => `${escapeText(g)} ${escapeText(k.slice(-12))}`).join(', ')}`] : []),
    `KAN part: Dense KAN constants vs LuthamBackend payloads + codebooks; 'lutham compare' breaks the files down further`,
    `R^2 of the coefficients per codebook: ${r2}`,
    ...(r.dense_int8_xnnpack
      ? [`Dense int8 (XNNPACK): what users ship today, the heads folded to one matmul per layer with dynamic int8 weights (PT2E XNNPACKQuantizer, per-channel; the backbone as that quantizer's dynamic patterns take it); size ${r.dense_int8_xnnpack.method}, not written`]
      : []),
    ...(r.max_batch > 1 ? [`both programs take any batch from 1 to ${r.max_batch}`] : []),
    `output error: relative L2 of the head outputs, SHARe-KAN vs Dense, PyTorch eager, seeded inputs`,
    ...(r.finetune ? [formatFinetune(r.finetune, at)] : []),
  ];
  for (const w of r.warnings) lines.push(`warning: ${escapeText(w)}`);
  return lines.join('\n');
}

/** backbone, forward, head_0 .. head_49: a run of numbered methods as one range. */
export function methodList(names: string[]): string {
  const heads = names.filter((n) => /^head_\d+$/.test(n)).map((n) => Number(n.slice(5))).sort((a, b) => a - b);
  const others = names.filter((n) => !/^head_\d+$/.test(n)).map(escapeText);
  const contiguous = heads.length > 2 && heads.every((k, i) => k === heads[0] + i);
  const headText = contiguous ? [`head_${heads[0]} .. head_${heads[heads.length - 1]}`] : heads.map((k) => `head_${k}`);
  return [...others, ...headText].join(', ');
}

/** --finetune-codebook: the output error on the calibration inputs before and after. */
function formatFinetune(f: NonNullable<ExportReport['finetune']>, at: (p: string) => string): string {
  const what = f.tune_gains ? 'codebooks and gains' : 'codebooks';
  const result = f.kept
    ? `${f.output_error_before.toExponential(2)} -> ${f.output_error_after.toExponential(2)}`
    : `${f.output_error_before.toExponential(2)} kept (fine-tuning gave ${f.output_error_after.toExponential(2)})`;
  return `fine-tuned ${what} on ${f.calibration_inputs} calibration inputs of ${at(f.calibration.path)} (${f.epochs} epochs): output error ${result}`;
}
