// The text of `lutham compare` (ts/pte/compare.ts measures the categories).
import { CATEGORIES, CATEGORY_LABELS, type Comparison } from '../pte/compare.js';
import { bytesCell, num, table } from './text.js';
import { escapeText } from './escape.js';

function ratioText(r: number | null): string {
  if (r === null || r === 0) return '-';
  return r >= 10 ? `${r.toFixed(1)}x` : `${r.toFixed(2)}x`;
}

function pct(part: number, whole: number): string {
  return whole === 0 ? '' : `${((100 * part) / whole).toFixed(1)}%`;
}

/** The human-readable table of a Comparison. */
export function formatCompare(c: Comparison): string {
  const rows: string[][] = [];
  for (const cat of CATEGORIES) {
    rows.push([
      CATEGORY_LABELS[cat],
      bytesCell(c.dense.bytes[cat]),
      pct(c.dense.bytes[cat], c.dense.fileBytes),
      bytesCell(c.lutham.bytes[cat]),
      pct(c.lutham.bytes[cat], c.lutham.fileBytes),
      ratioText(c.ratios[cat]),
    ]);
  }
  const luthamTotal = c.lutham.fileBytes + (c.external?.fileBytes ?? 0);
  if (c.external) rows.push(['external data (.ptd codebooks)', '', '', bytesCell(c.external.fileBytes), '', '']);
  rows.push(['KAN part (weights + codebook)', bytesCell(c.kanPart.dense), pct(c.kanPart.dense, c.dense.fileBytes), bytesCell(c.kanPart.lutham), pct(c.kanPart.lutham, c.lutham.fileBytes), ratioText(c.kanPart.ratio)]);
  rows.push([CATEGORY_LABELS.total, bytesCell(c.dense.fileBytes), '', bytesCell(luthamTotal), '', ratioText(c.ratios.total)]);
  rows.push([CATEGORY_LABELS.planned, bytesCell(c.dense.plannedBytes), '', bytesCell(c.lutham.plannedBytes), '', ratioText(c.ratios.planned)]);
  const out = [
    `Dense:     ${escapeText(c.dense.path)}`,
    `SHARe-KAN: ${escapeText(c.lutham.path)}${c.external ? ` + ${escapeText(c.external.path)}` : ''} (${num(c.lutham.luthamDelegates)} LuthamBackend delegates, ${num(c.lutham.codebookSegments)} codebook segments)`,
    '',
    table(['category', 'dense bytes', '%', 'SHARe-KAN bytes', '%', 'dense/SHARe-KAN'], rows, [1, 2, 3, 4, 5]),
    '',
    `Overall: the SHARe-KAN file is ${ratioText(c.ratios.total)} smaller (${num(c.dense.fileBytes)} / ${num(luthamTotal)} bytes); its KAN part ${ratioText(c.kanPart.ratio)}.`,
  ];
  for (const n of c.notes) out.push(`Note: ${escapeText(n)}`);
  return out.join('\n') + '\n';
}
