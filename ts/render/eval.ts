/**
 * The eval results as people read them: the four tables of a model as one spec (modelTables),
 * shown as terminal text (`lutham eval`), as BENCHMARKS.md Markdown and as the report's HTML.
 */
import type { EvalResults, ModelResults } from '../lib/eval.js';
import { formatBytes, markdownTable, num, table } from './text.js';
import { escapeText } from './escape.js';

export const pct = (a: number) => `${(a * 100).toFixed(2)}%`;
export const accSe = (a: number, se: number) => `${(a * 100).toFixed(2)} ± ${(se * 100).toFixed(2)}`;
export const ratioText = (r: number | null | undefined) => (r === null || r === undefined ? '-' : `${r.toFixed(1)}x`);

function engineOf(rows: { engine: string }[]): string {
  const e = [...new Set(rows.map((r) => r.engine))];
  return e.join('/');
}

/** One table of a model's results as cells; the report's HTML and BENCHMARKS.md's Markdown render it. */
export interface ResultTable {
  header: string[];
  rows: (string | number)[][];
}

/**
 * The four tables of one model (Table 1, VQ saturation, pruning cliff, baselines), the one spec the
 * terminal, the report and BENCHMARKS.md show. `bytes` formats Table 1's byte counts.
 */
export function modelTables(m: ModelResults, s: EvalResults['settings'], bytes: (n: number) => string = formatBytes) {
  const dense = m.table1[0];
  const sk = m.table1[2];
  const table1: ResultTable = {
    header: ['method', 'accuracy % (± SE)', 'Δ vs Dense (points)', 'KAN-layer bytes', 'bytes/edge', 'ratio', 'measured with'],
    rows: m.table1.map((r) => [r.method, accSe(r.accuracy, r.se), r === dense ? '' : ((r.accuracy - dense.accuracy) * 100).toFixed(2),
      bytes(r.bytes), r.bytes_per_edge.toFixed(2), ratioText(r.ratio), r.engine === 'executorch' ? 'ExecuTorch (lutham.pte, LuthamBackend)' : 'PyTorch eager']),
  };
  const saturation: ResultTable = {
    header: ['K', 'K per layer', 'R²', 'accuracy % (± SE)', 'bytes/edge', 'ratio'],
    rows: m.saturation.map((r) => [r.K, r.K_layers.join(' / '), r.r2.toFixed(4), accSe(r.accuracy, r.se), r.bytes_per_edge.toFixed(2), ratioText(r.ratio)]),
  };
  const pruning: ResultTable = {
    header: ['sparsity', 'accuracy % (± SE)', 'bytes/edge', 'ratio', 'SHARe-KAN at ≤ bytes', 'its accuracy', 'its ratio'],
    rows: m.pruning.map((r) => [`${Math.round(r.sparsity * 100)}%`, accSe(r.accuracy, r.se), r.bytes_per_edge.toFixed(2), ratioText(r.ratio),
      r.sharekan?.label ?? '-', r.sharekan ? accSe(r.sharekan.accuracy, r.sharekan.se) : '-', ratioText(r.sharekan?.ratio)]),
  };
  const baselines: ResultTable = {
    header: ['method', 'setting', 'accuracy % (± SE)', 'bytes/edge', 'ratio', 'measured with'],
    rows: [{ ...sk, method: 'SHARe-KAN int (reference)', setting: `K=${sk.K ?? s.codebook_size}`, equal_bytes: false }, ...m.baselines]
      .map((r) => [r.method + (r.equal_bytes ? ' (equal bytes)' : ''), r.setting, accSe(r.accuracy, r.se), r.bytes_per_edge.toFixed(2), ratioText(r.ratio), r.engine]),
  };
  return { table1, saturation, pruning, baselines };
}

/** One model's results as terminal text: modelTables' four tables with their captions. */
export function formatModel(m: ModelResults, s: EvalResults['settings']): string {
  const t = modelTables(m, s);
  const eb = m.equal_bytes;
  const lines: string[] = [];
  lines.push(`== ${m.label}: ${num(m.edges)} KAN edges (layers ${m.layer_edges.join(' + ')}) ==`);
  lines.push('');
  lines.push(`Table 1. Test accuracy (%, ± standard error) and KAN-layer storage at K = ${s.codebook_size}`);
  lines.push(table(t.table1.header, t.table1.rows));
  lines.push(`SHARe-KAN int: int${s.codebook_bits} codebook, ${s.gain_bits}-bit gains, ${s.bias_bits}-bit biases, ${s.base_bits}-bit base weights, packed indices`);
  if (m.engine_note) lines.push(`note: ${m.engine_note}`);
  lines.push('');
  lines.push(`VQ saturation: R^2 of the coefficients (layer ${m.saturation_r2_layer}, the largest) and accuracy vs K (int, eager; K capped at the layer's edges)`);
  lines.push(table(t.saturation.header, t.saturation.rows));
  lines.push('');
  lines.push(`Pruning cliff: magnitude pruning of whole edges, no fine-tune (eager), next to the best SHARe-KAN measured at no more bytes`);
  lines.push(table(t.pruning.header, t.pruning.rows));
  lines.push('');
  lines.push(`Baselines (equal bytes: SHARe-KAN int uses ${formatBytes(eb.budget_bytes)}; plain k-means fits that at K = ${eb.plain_kmeans_K})`);
  lines.push(table(t.baselines.header, t.baselines.rows));
  if (eb.calibration_images) lines.push(`codebook fine-tune: ${eb.calibration_images} training images, codebooks only`);
  lines.push(`measured with: ${engineOf(m.table1.slice(1))} for the compressed Table 1 rows, eager elsewhere unless marked`);
  return lines.join('\n');
}

function modelMarkdown(m: ModelResults, s: EvalResults['settings']): string {
  const t = modelTables(m, s, num); // exact byte counts, as everywhere in BENCHMARKS.md
  const epochs = m.training.epochs;
  const eb = m.equal_bytes;
  const out: string[] = [];
  out.push(`### ${m.label}`, '');
  out.push(`${num(m.edges)} edges. ${typeof epochs === 'number' ? `Training: ${epochs} epochs, seed ${s.seed}.` : `Model: ${String(m.training.checkpoint ?? 'given')}.`}`, '');
  out.push('Table 1 (compressed rows: `lutham.pte` run through ExecuTorch with the C++ LuthamBackend):', '');
  out.push(markdownTable(t.table1.header, t.table1.rows));
  if (m.engine_note) out.push('', `Note: ${m.engine_note}`);
  out.push('', "VQ saturation (int, eager; K capped at the layer's edges):", '');
  out.push(markdownTable(t.saturation.header, t.saturation.rows));
  out.push('', 'Pruning cliff (whole edges by magnitude, no fine-tune, eager) vs the best SHARe-KAN measured at no more bytes:', '');
  out.push(markdownTable(t.pruning.header, t.pruning.rows));
  out.push('', `Baselines (SHARe-KAN int uses ${num(eb.budget_bytes)} B by the analytic count; plain k-means fits that at K = ${eb.plain_kmeans_K}` +
    `${eb.calibration_images ? `; fine-tune: ${eb.calibration_images} training images, codebooks only` : ''}):`, '');
  out.push(markdownTable(t.baselines.header, t.baselines.rows));
  return out.join('\n');
}

/** The eval results as the Markdown of BENCHMARKS.md's accuracy section. */
export function evalMarkdown(r: EvalResults): string {
  const s = r.settings;
  const out: string[] = [];
  out.push(`Data: ${escapeText(r.dataset.name)} (${escapeText(r.dataset.source)}), ${r.dataset.train} training / ${r.dataset.test} test images` +
    `${s.subset ? ` (--subset ${s.subset})` : ''}. Accuracy is on the ${num(r.dataset.test)} test images, ± one binomial standard error. ` +
    `Bytes are the KAN layers only, as stored in the .pte where measured with executorch. SHARe-KAN int = K ${s.codebook_size}, ` +
    `int${s.codebook_bits} codebook, ${s.gain_bits}-bit gains, ${s.bias_bits}-bit biases, ${s.base_bits}-bit base weights.`);
  if (r.target?.text) {
    const t = r.target;
    out.push('', `**Target** (${r.models.find((m) => m.kind === t.model)?.label ?? t.model}: SHARe-KAN int within ${t.max_drop_points} points of Dense at >= ${t.min_ratio}x KAN-layer storage): ` +
      `**${t.met ? 'met' : 'not met'}**. ${t.text.replace(/^(NOT )?MET: /, '')}.`);
  }
  for (const m of r.models) out.push('', modelMarkdown(m, s));
  return out.join('\n') + '\n';
}

export function formatEval(r: EvalResults): string {
  const out: string[] = [];
  out.push(`Dataset: ${escapeText(r.dataset.name)} (${escapeText(r.dataset.source)}): ${r.dataset.train} training / ${r.dataset.test} test images${r.settings.subset ? ` (--subset ${r.settings.subset})` : ''}` +
    (r.dataset.pixels ? `, pixels ${r.dataset.pixels === '-1,1' || r.dataset.pixels === '0,1' ? `in [${r.dataset.pixels}]` : r.dataset.pixels}` : ''));
  out.push('');
  for (const m of r.models) {
    out.push(formatModel(m, r.settings));
    out.push('');
  }
  if (r.target?.text) out.push(`Target (${r.target.model}): ${r.target.text}`);
  out.push(`(${r.seconds} s)`);
  return out.join('\n');
}
