/** The report's HTML page: tables (modelTables, the one spec) and inline SVG charts, no network. */
import type { EvalResults, ModelResults } from '../lib/eval.js';
import { modelTables } from './eval.js';
import { formatBytes, num } from './text.js';

// ---------------------------------------------------------------- SVG charts

export interface Point { x: number; y: number; err?: number; label?: string }
export interface Series { name: string; points: Point[]; color: string; dashed?: boolean; markersOnly?: boolean }
export interface ChartSpec {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  xLog?: boolean;
  series: Series[];
  hlines?: { y: number; label: string; color: string }[];
  yRange?: [number, number];
}

const W = 640;
const H = 360;
const M = { l: 64, r: 16, t: 36, b: 84 };

export function esc(s: string | number): string {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmtTick(v: number, log = false): string {
  if (log && v >= 1024 && Number.isInteger(Math.log2(v))) return `${v / 1024}k`;
  if (Math.abs(v) >= 1000) return v >= 1e6 ? `${v / 1e6}M` : `${v / 1000}k`;
  return Number(v.toPrecision(4)).toString();
}

/** A line chart with optional log-x axis, error bars (±err), horizontal reference lines and a legend. */
export function lineChart(c: ChartSpec): string {
  const pts = c.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const tx = (v: number) => (c.xLog ? Math.log2(v) : v);
  let x0 = Math.min(...pts.map((p) => tx(p.x)));
  let x1 = Math.max(...pts.map((p) => tx(p.x)));
  if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
  const padX = (x1 - x0) * 0.04;
  x0 -= padX; x1 += padX;
  const ys = [...pts.flatMap((p) => [p.y - (p.err ?? 0), p.y + (p.err ?? 0)]), ...(c.hlines ?? []).map((h) => h.y)];
  let [y0, y1] = c.yRange ?? [Math.min(...ys), Math.max(...ys)];
  if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
  const padY = (y1 - y0) * 0.06;
  if (!c.yRange) { y0 -= padY; y1 += padY; }
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const X = (v: number) => M.l + ((tx(v) - x0) / (x1 - x0)) * pw;
  const Y = (v: number) => M.t + (1 - (v - y0) / (y1 - y0)) * ph;
  const f = (v: number) => v.toFixed(1);
  const parts: string[] = [];
  parts.push(`<svg class="chart" id="${esc(c.id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(c.title)}">`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${W / 2}" y="20" text-anchor="middle" class="title">${esc(c.title)}</text>`);
  // grid + ticks
  const yt = niceTicks(y0, y1);
  for (const v of yt) {
    parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${f(Y(v))}" y2="${f(Y(v))}" class="grid"/>`);
    parts.push(`<text x="${M.l - 6}" y="${f(Y(v) + 4)}" text-anchor="end" class="tick">${esc(fmtTick(v))}</text>`);
  }
  const xt = c.xLog
    ? Array.from({ length: Math.floor(x1) - Math.ceil(x0) + 1 }, (_, i) => 2 ** (Math.ceil(x0) + i)).filter((_, i, a) => a.length <= 10 || i % Math.ceil(a.length / 9) === 0)
    : niceTicks(x0, x1);
  for (const v of xt) {
    parts.push(`<line x1="${f(X(v))}" x2="${f(X(v))}" y1="${M.t}" y2="${H - M.b}" class="grid"/>`);
    parts.push(`<text x="${f(X(v))}" y="${H - M.b + 16}" text-anchor="middle" class="tick">${esc(fmtTick(v, c.xLog))}</text>`);
  }
  parts.push(`<rect x="${M.l}" y="${M.t}" width="${pw}" height="${ph}" class="frame"/>`);
  parts.push(`<text x="${M.l + pw / 2}" y="${H - M.b + 36}" text-anchor="middle" class="axis">${esc(c.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${M.t + ph / 2}) rotate(-90)" text-anchor="middle" class="axis">${esc(c.yLabel)}</text>`);
  for (const h of c.hlines ?? []) {
    parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${f(Y(h.y))}" y2="${f(Y(h.y))}" stroke="${h.color}" stroke-dasharray="6 4" stroke-width="1.5"/>`);
  }
  for (const s of c.series) {
    const p = s.points.filter((q) => Number.isFinite(q.x) && Number.isFinite(q.y)).sort((a, b) => a.x - b.x);
    if (!p.length) continue;
    parts.push(`<g class="series" data-name="${esc(s.name)}">`);
    if (!s.markersOnly && p.length > 1) {
      const d = p.map((q, i) => `${i ? 'L' : 'M'}${f(X(q.x))} ${f(Y(q.y))}`).join(' ');
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    }
    for (const q of p) {
      if (q.err) parts.push(`<line x1="${f(X(q.x))}" x2="${f(X(q.x))}" y1="${f(Y(q.y - q.err))}" y2="${f(Y(q.y + q.err))}" stroke="${s.color}" stroke-width="1.2"/>`);
      parts.push(`<circle cx="${f(X(q.x))}" cy="${f(Y(q.y))}" r="3.5" fill="${s.color}"><title>${esc(`${s.name}${q.label ? ` ${q.label}` : ''}: x=${q.x}, y=${q.y.toFixed(4)}${q.err ? ` ± ${q.err.toFixed(4)}` : ''}`)}</title></circle>`);
    }
    parts.push('</g>');
  }
  // legend below the plot
  const legend = [...c.series.map((s) => ({ name: s.name, color: s.color, dashed: s.dashed })), ...(c.hlines ?? []).map((h) => ({ name: h.label, color: h.color, dashed: true }))];
  let lx = M.l;
  let ly = H - 26;
  for (const e of legend) {
    const w = 28 + e.name.length * 6.4;
    if (lx + w > W - M.r) { lx = M.l; ly += 16; }
    parts.push(`<line x1="${f(lx)}" x2="${f(lx + 18)}" y1="${ly}" y2="${ly}" stroke="${e.color}" stroke-width="2.5"${e.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    parts.push(`<text x="${f(lx + 22)}" y="${ly + 4}" class="legend">${esc(e.name)}</text>`);
    lx += w + 12;
  }
  parts.push('</svg>');
  return parts.join('\n');
}

// ---------------------------------------------------------------- the page

const COLORS = { sharekan: '#1f77b4', plain: '#d62728', uniform: '#2ca02c', prune: '#ff7f0e', dense: '#555555', r2: '#9467bd', ft: '#8c564b' };
const p100 = (a: number) => a * 100;

function htmlTable(header: string[], rows: (string | number)[][]): string {
  return `<table><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c, i) => `<td${i ? ' class="num"' : ''}>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

export function modelCharts(m: ModelResults, id: string): string[] {
  const dense = m.table1[0];
  const denseLine = { y: p100(dense.accuracy), label: `Dense ${p100(dense.accuracy).toFixed(2)}%`, color: COLORS.dense };
  const sat = lineChart({
    id: `${id}-saturation`, title: 'VQ saturation: accuracy and R² vs codebook size K', xLabel: 'K (codewords, log scale)', yLabel: 'test accuracy (%)', xLog: true,
    series: [{ name: 'SHARe-KAN int accuracy', color: COLORS.sharekan, points: m.saturation.map((r) => ({ x: r.K, y: p100(r.accuracy), err: p100(r.se) })) }],
    hlines: [denseLine],
  });
  const r2 = lineChart({
    id: `${id}-r2`, title: `R² of the spline coefficients vs K (layer ${m.saturation_r2_layer}, the largest)`, xLabel: 'K (codewords, log scale)', yLabel: 'R²', xLog: true,
    series: [{ name: 'R² (SHARe-KAN int)', color: COLORS.r2, points: m.saturation.map((r) => ({ x: r.K, y: r.r2 })) }],
  });
  const prune = lineChart({
    id: `${id}-pruning`, title: 'Pruning cliff: accuracy vs storage', xLabel: 'bytes per edge (log scale)', yLabel: 'test accuracy (%)', xLog: true,
    series: [
      { name: 'magnitude pruning (no fine-tune)', color: COLORS.prune, points: m.pruning.map((r) => ({ x: r.bytes_per_edge, y: p100(r.accuracy), err: p100(r.se), label: `${Math.round(r.sparsity * 100)}%` })) },
      { name: 'SHARe-KAN int (K sweep)', color: COLORS.sharekan, points: m.saturation.map((r) => ({ x: r.bytes_per_edge, y: p100(r.accuracy), err: p100(r.se), label: `K=${r.K}` })) },
    ],
    hlines: [denseLine],
  });
  const plain = m.baselines.filter((b) => b.method === 'plain k-means');
  const uni = m.baselines.filter((b) => b.method === 'uniform quantization');
  const ft = m.baselines.filter((b) => b.method.includes('fine-tune'));
  const sk = m.table1[2];
  const base = lineChart({
    id: `${id}-baselines`, title: 'Accuracy vs bytes per edge: SHARe-KAN and the baselines', xLabel: 'bytes per edge (log scale)', yLabel: 'test accuracy (%)', xLog: true,
    series: [
      { name: 'SHARe-KAN int (K sweep)', color: COLORS.sharekan, points: m.saturation.map((r) => ({ x: r.bytes_per_edge, y: p100(r.accuracy), err: p100(r.se), label: `K=${r.K}` })) },
      { name: `SHARe-KAN int K=${sk.K} (${sk.engine})`, color: '#17becf', markersOnly: true, points: [{ x: sk.bytes_per_edge, y: p100(sk.accuracy), err: p100(sk.se) }] },
      { name: 'plain k-means (raw coefficients)', color: COLORS.plain, points: plain.map((r) => ({ x: r.bytes_per_edge, y: p100(r.accuracy), err: p100(r.se), label: r.setting })) },
      { name: 'uniform quantization', color: COLORS.uniform, points: uni.map((r) => ({ x: r.bytes_per_edge, y: p100(r.accuracy), err: p100(r.se), label: r.setting })) },
      ...(ft.length ? [{ name: 'codebook fine-tune', color: COLORS.ft, markersOnly: true, points: ft.map((r) => ({ x: r.bytes_per_edge, y: p100(r.accuracy), err: p100(r.se), label: r.method })) }] : []),
    ],
    hlines: [denseLine],
  });
  return [sat, r2, prune, base];
}

function modelSection(m: ModelResults, r: EvalResults, i: number): string {
  const id = `m${i}-${m.kind.replace(/[^a-z0-9_-]/gi, '')}`;
  const s = r.settings;
  const t = modelTables(m, s);
  const [t1, sat, prune, base] = [t.table1, t.saturation, t.pruning, t.baselines].map((x) => htmlTable(x.header, x.rows));
  const [cSat, cR2, cPrune, cBase] = modelCharts(m, id);
  return `<section id="${id}">
<h2>${esc(m.label)}</h2>
<p>${num(m.edges)} KAN edges (layers: ${m.layer_edges.map(num).join(' + ')}); dense KAN layers ${esc(formatBytes(m.dense_bytes))}.
Training: ${esc(JSON.stringify(m.training))}</p>
<h3>Table 1: accuracy and storage at K = ${s.codebook_size}</h3>
${t1}
<p class="note">SHARe-KAN int: int${s.codebook_bits} codebook (one scale per codeword), ${s.gain_bits}-bit gains, ${s.bias_bits}-bit biases, ${s.base_bits}-bit base weights (one scale per output row), indices packed to ⌈log₂K⌉ bits.
${m.engine_note ? esc(m.engine_note) : 'Compressed rows: lutham.pte run through ExecuTorch with the C++ LuthamBackend; Dense: PyTorch eager.'}</p>
<h3>VQ saturation (the paper's Figure 3)</h3>
<div class="charts">${cSat}${cR2}</div>
${sat}
<h3>Pruning cliff (the paper's Figure 1)</h3>
<div class="charts">${cPrune}</div>
${prune}
<h3>Baselines at equal bytes</h3>
<div class="charts">${cBase}</div>
${base}
<p class="note">Plain k-means (MetaCluster without its meta-learner) clusters the raw coefficient vectors; at equal bytes with SHARe-KAN int (${esc(formatBytes(m.equal_bytes.budget_bytes))}) it affords K = ${m.equal_bytes.plain_kmeans_K}.
Uniform quantization: every coefficient at b bits, one scale per output row (KANtize-style). Sweeps are PyTorch eager.</p>
</section>`;
}

const CSS = `body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1340px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}h3{font-size:15px;margin-top:20px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 8px}th{background:#f4f4f4;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #e4e4e4}.note{color:#555;font-size:13px}
.target{padding:8px 12px;border-radius:4px}.met{background:#e6f4e6;border:1px solid #9c9}.notmet{background:#fbeaea;border:1px solid #d99}
svg .title{font-size:14px;font-weight:600}svg .tick{font-size:11px;fill:#444}svg .axis{font-size:12px;fill:#222}svg .legend{font-size:11px;fill:#222}
svg .grid{stroke:#eee}svg .frame{fill:none;stroke:#999}`;

/** Each chart's rendered size goes into data-rendered-* attributes (for headless checks). */
const LAYOUT_SCRIPT = `window.addEventListener('load',function(){document.querySelectorAll('svg.chart').forEach(function(s){var b=s.getBoundingClientRect();s.setAttribute('data-rendered-width',String(Math.round(b.width)));s.setAttribute('data-rendered-height',String(Math.round(b.height)));s.setAttribute('data-rendered-marks',String(s.querySelectorAll('path,circle').length));});document.body.setAttribute('data-rendered','1');});`;

export function renderReport(r: EvalResults): string {
  const t = r.target;
  const sections = r.models.map((m, i) => modelSection(m, r, i)).join('\n');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>LUTHAM evaluation: ${esc(r.dataset.name)}</title>
<style>${CSS}</style></head>
<body>
<h1>LUTHAM evaluation: SHARe-KAN on ${esc(r.dataset.name)}</h1>
<p>Data: ${esc(r.dataset.source)}; ${num(r.dataset.train)} training and ${num(r.dataset.test)} test images${r.settings.subset ? ` (subset ${r.settings.subset})` : ''}.
Accuracies are on the test images with ± one standard error (binomial, √(p(1−p)/n)); differences below about two standard errors are noise.
Bytes are those of the KAN layers only. Run time ${r.seconds} s.</p>
${t?.text ? `<p class="target ${t.met ? 'met' : 'notmet'}"><b>Target</b> (${esc(t.model)}): ${esc(t.text)}</p>` : ''}
${sections}
<p class="note">Generated by <code>lutham report</code>; self-contained (no network). The numbers are in report.json beside this file.</p>
<script>${LAYOUT_SCRIPT}</script>
</body></html>
`;
}
