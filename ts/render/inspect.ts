// The text of `lutham inspect` (ts/pte/inspect.ts builds the report).
import { PANEL_WIDTH } from '../payload/format.js';
import type { InspectReport } from '../pte/inspect.js';
import type { PtdReport } from '../pte/ptd.js';
import type { ValueDesc } from '../pte/program.js';
import { bytesCell, indent, num, table } from './text.js';
import { escapeText } from './escape.js';

function valueText(v: ValueDesc): string {
  if (v.tensor) return `#${v.index} ${v.tensor.dtype}[${v.tensor.shape.join(', ')}]`;
  return `#${v.index} ${v.type}`;
}

function quantText(q: { bits: number; scaleCount: number }): string {
  return q.bits === 32 ? 'fp32' : `int${q.bits}/${q.scaleCount}s`;
}

/** head_2 before head_10: digit runs compare as numbers. */
export function naturalOrder(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** The human-readable form of an InspectReport. */
export function formatInspect(r: InspectReport): string {
  const out: string[] = [];
  const eh = r.extendedHeader;
  out.push(`${escapeText(r.path)}: ${bytesCell(r.fileBytes)}, ${r.identifier} v${r.version}`);
  out.push(
    eh
      ? `  program ${bytesCell(r.programBytes)}; segment data ${bytesCell(eh.segmentDataSize)} at offset ${num(eh.segmentBaseOffset)}`
      : `  program ${bytesCell(r.programBytes)}; no extended header (no segments)`,
  );
  out.push('');
  out.push(`Methods (${r.methods.length}):`);
  const shapes = (s: (number[] | null)[]) => s.map((t) => (t ? `[${t.join(', ')}]` : '(not a tensor)')).join(' ') || '-';
  out.push(indent(table(['method', 'inputs', 'outputs', 'delegates', 'LuthamBackend'],
    [...r.methods].sort((a, b) => naturalOrder(a.name, b.name)).map((m) => [escapeText(m.name), shapes(m.inputs), shapes(m.outputs), String(m.delegates), String(m.luthamDelegates)]), [3, 4])));
  for (const p of r.plans) {
    out.push('');
    out.push(`Plan "${escapeText(p.name)}": ${num(p.valueCount)} values, ${num(p.instructionCount)} instructions`);
    out.push(`  inputs:  ${p.inputs.map(valueText).join('; ') || '-'}`);
    out.push(`  outputs: ${p.outputs.map(valueText).join('; ') || '-'}`);
    out.push(`  operators (${p.operators.length}): ${p.operators.map(escapeText).join(', ') || '-'}`);
    out.push(`  memory plan: non_const_buffer_sizes [${p.nonConstBufferSizes.join(', ')}] = ${bytesCell(p.plannedBytes)} planned`);
    out.push(`  constants: ${num(p.constants.count)} tensors in ${num(p.constants.buffers)} buffers, ${bytesCell(p.constants.bytes)}`);
    if (p.delegates.length > 0) {
      out.push(`  delegates (${p.delegates.length}):`);
      const rows = p.delegates.map((d) => [
        String(d.index),
        escapeText(d.backendId),
        d.location === 'segment' ? `segment ${d.dataIndex}` : `inline ${d.dataIndex}`,
        num(d.bytes),
        d.compileSpecs.map((c) => escapeText(c.key)).join(',') || '-',
      ]);
      out.push(indent(table(['#', 'backend', 'location', 'bytes', 'compile specs'], rows, [0, 3]), '    '));
    }
  }
  if (r.luthamLayers.length > 0) {
    out.push('');
    out.push(`LUTHAM layers (${r.luthamLayers.length}):`);
    const keys = [...new Set(r.luthamLayers.map((l) => l.codebookKey))];
    const rows = r.luthamLayers.map((l) => [
      `${escapeText(l.plan)}#${l.delegate}`,
      `${l.inFeatures}->${l.outFeatures}`,
      String(l.gridSize),
      String(l.splineOrder),
      String(l.codebookSize),
      String(l.indexBits),
      quantText(l.gains),
      quantText(l.biases),
      quantText(l.baseWeight),
      `cb${keys.indexOf(l.codebookKey)}`,
      l.r2 === null ? '-' : l.r2.toFixed(4),
      l.compute,
      num(l.bytes),
    ]);
    out.push(indent(table(['delegate', 'in->out', 'grid', 'order', 'K', 'idx bits', 'gains', 'biases', 'base', 'codebook', 'R^2', 'compute', 'bytes'], rows, [2, 3, 4, 5, 10, 12])));
    out.push(indent(`gains/biases/base: fp32, or intN/Ss = N-bit ints with S per-output float scales (outputs padded to panels of ${PANEL_WIDTH})`));
    out.push(indent('compute: float (the exact float32 kernel) or int8 (lutham export --compute int8: 8-bit table, silu and basis sums, int32 sums)'));
    out.push(indent(keys.map((k, i) => `cb${i} = ${escapeText(k)}`).join('\n')));
  }
  out.push('');
  out.push(`Segments (${r.segments.length}):`);
  if (r.segments.length > 0) {
    const rows = r.segments.map((s) => [String(s.index), num(s.offset), num(s.bytes), s.uses.map(escapeText).join('; ') || '(unused)']);
    out.push(indent(table(['#', 'offset', 'bytes', 'use'], rows, [0, 1, 2])));
  }
  out.push('');
  out.push(`Named data (${r.namedData.length}):`);
  if (r.namedData.length > 0) {
    const rows = r.namedData.map((n) => [
      escapeText(n.key),
      String(n.segmentIndex),
      num(n.bytes),
      n.codebook ? `codebook ${n.codebook.size}x${n.codebook.dim} ${quantText(n.codebook.values)}` : escapeText(n.kind),
      n.usedBy.length === 0 ? '-' : `${n.usedBy.length} delegates: ${n.usedBy.map((u) => `${escapeText(u.plan)}#${u.delegate}`).join(', ')}`,
    ]);
    out.push(indent(table(['key', 'segment', 'bytes', 'kind', 'used by'], rows, [1, 2])));
  }
  if (r.externalKeys.length > 0) {
    out.push('');
    out.push(r.data
      ? `External data (${r.externalKeys.length} codebooks, from ${escapeText(r.data.path)}):`
      : `External data: ${r.externalKeys.length} codebooks come from a .ptd (run with --data FILE; inspect FILE.ptd shows what it holds):`);
    out.push(indent(r.externalKeys.map(escapeText).join('\n')));
  }
  out.push('');
  const c = r.constants;
  out.push(
    c.location === 'none'
      ? 'Constants: none'
      : `Constants: ${num(c.tensorCount)} tensors, ${num(c.bufferCount)} buffers, ${bytesCell(c.usedBytes)} of data in ${bytesCell(c.bytes)} (${c.location === 'segment' ? `segment ${c.segmentIndex}` : 'inline constant_buffer'})`,
  );
  if (r.problems.length > 0) {
    out.push('');
    out.push('Problems:');
    for (const p of r.problems) out.push(`  - ${escapeText(p)}`);
  }
  const v = r.verified;
  if (v) {
    out.push('');
    out.push(v.failures.length === 0
      ? `Verified: ${num(v.payloads)} LUTHAM payloads (CRC-32, every index) and ${num(v.codebooks)} codebooks (values, SHA-256 of the key): all good`
      : `Verify FAILED: ${v.failures.length} of the checks on ${num(v.payloads)} payloads and ${num(v.codebooks)} codebooks:`);
    for (const f of v.failures) out.push(`  - ${escapeText(f)}`);
  }
  return out.join('\n') + '\n';
}

/** The human-readable form of a .ptd report. */
export function formatPtd(r: PtdReport): string {
  const out: string[] = [];
  out.push(`${escapeText(r.path)}: ${bytesCell(r.fileBytes)}, ${r.identifier} v${r.version} (ExecuTorch external data)`);
  out.push('');
  out.push(`Named data (${r.entries.length}):`);
  if (r.entries.length > 0) {
    const rows = r.entries.map((e) => [
      escapeText(e.key),
      String(e.segmentIndex),
      num(e.bytes),
      e.codebook ? `codebook ${e.codebook.size}x${e.codebook.dim} ${quantText(e.codebook.values)}` : 'other',
    ]);
    out.push(indent(table(['key', 'segment', 'bytes', 'kind'], rows, [1, 2])));
  }
  const v = r.verified;
  if (v) {
    out.push('');
    out.push(v.failures.length === 0
      ? `Verified: ${num(v.codebooks)} codebooks (values, SHA-256 of the key): all good`
      : `Verify FAILED: ${v.failures.length} of the checks on ${num(v.codebooks)} codebooks:`);
    for (const f of v.failures) out.push(`  - ${f}`);
  }
  return out.join('\n') + '\n';
}
