// `lutham inspect`: a structured description of a .pte file.
//
// Reads the header and the flatbuffer program, then only the small things it shows in
// detail: LuthamBackend payloads and LUTHAM codebooks. Constant data and other
// backends' payloads are sized from the tables, never read.
import { LuthamError } from '../errors.js';
import { isCodebook, readCodebook, readPayload, type CodebookInfo, type LayerInfo } from '../payload/index.js';
import { PteFile, type ExtendedHeader } from './file.js';
import { bytesCell, indent, num, table } from './format.js';
import {
  constantBufferBytes,
  describeConstantStorage,
  describeNamedData,
  describePlans,
  mutableSegmentIndices,
  readDelegateData,
  type ConstantStorage,
  type DelegateDesc,
  type PlanDesc,
  type ValueDesc,
} from './program.js';

export const LUTHAM_BACKEND_ID = 'LuthamBackend';
/** Named data larger than this is not read to check for a LUTHAM codebook. */
const MAX_CODEBOOK_BYTES = 256 << 20;

export interface DelegateReport extends DelegateDesc {
  /** Parsed payload, for LuthamBackend delegates. */
  lutham?: LayerInfo;
}

export interface PlanReport extends Omit<PlanDesc, 'constants' | 'delegates'> {
  delegates: DelegateReport[];
  /** Constant tensors used by this plan. */
  constants: { count: number; buffers: number; bytes: number };
}

export interface DelegateRef {
  plan: string;
  delegate: number;
}

export interface NamedDataReport {
  key: string;
  segmentIndex: number;
  bytes: number;
  kind: 'lutham-codebook' | 'other';
  /** Delegates whose payload names this key (known for LuthamBackend payloads). */
  usedBy: DelegateRef[];
  codebook?: CodebookInfo;
}

export interface SegmentReport {
  index: number;
  /** Absolute offset in the file. */
  offset: number;
  bytes: number;
  /** What lives there: "constants", "delegate forward#0", "named data <key>", "mutable data". */
  uses: string[];
}

export interface InspectReport {
  path: string;
  fileBytes: number;
  identifier: string;
  version: number;
  /** Size of the flatbuffer program (the file up to the extended header's program_size). */
  programBytes: number;
  extendedHeader: ExtendedHeader | null;
  plans: PlanReport[];
  segments: SegmentReport[];
  namedData: NamedDataReport[];
  constants: ConstantStorage & { usedBytes: number; tensorCount: number };
  /** LuthamBackend layers in plan order. */
  luthamLayers: (DelegateRef & LayerInfo)[];
  /** Non-fatal inconsistencies (missing codebook, K mismatch, unused segment ...). */
  problems: string[];
}

/** Describes the .pte at `path` (throws LuthamError on a bad file). */
export async function inspectPte(path: string): Promise<InspectReport> {
  return PteFile.with(path, (pte) => inspectOpen(pte));
}

export async function inspectOpen(pte: PteFile): Promise<InspectReport> {
  return (await inspectWithPlans(pte)).report;
}

/** inspectOpen plus the full plan descriptions (with every constant tensor) it was built from. */
export async function inspectWithPlans(pte: PteFile): Promise<{ report: InspectReport; plans: PlanDesc[] }> {
  const problems: string[] = [];
  const plans = describePlans(pte);
  const named = describeNamedData(pte);
  const storage = describeConstantStorage(pte);
  const mutable = mutableSegmentIndices(pte);
  const segments: SegmentReport[] = pte.segments().map((s) => ({ index: s.index, offset: s.offset, bytes: s.size, uses: [] }));
  const useSegment = (i: number, what: string) => {
    if (i < 0 || i >= segments.length) throw new LuthamError(`${pte.path} is corrupt: ${what} refers to missing segment ${i}`);
    segments[i].uses.push(what);
  };
  if (storage.location === 'segment' && storage.segmentIndex !== null) useSegment(storage.segmentIndex, 'constants');
  for (const i of mutable) useSegment(i, 'mutable data');
  for (const nd of named) useSegment(nd.segmentIndex, `named data ${nd.key}`);

  const luthamLayers: (DelegateRef & LayerInfo)[] = [];
  const planReports: PlanReport[] = [];
  for (const plan of plans) {
    const delegates: DelegateReport[] = [];
    for (const d of plan.delegates) {
      const ref = `${plan.name}#${d.index}`;
      if (d.location === 'segment') useSegment(d.dataIndex, `delegate ${ref}`);
      const rep: DelegateReport = { ...d };
      if (d.backendId === LUTHAM_BACKEND_ID) {
        const bytes = await readDelegateData(pte, d);
        rep.lutham = readPayload(bytes, `${pte.path}: ${LUTHAM_BACKEND_ID} payload of delegate ${ref}`);
        luthamLayers.push({ plan: plan.name, delegate: d.index, ...rep.lutham });
      }
      delegates.push(rep);
    }
    const buffers = constantBufferBytes([plan]);
    const { constants, delegates: _d, ...rest } = plan;
    planReports.push({
      ...rest,
      delegates,
      constants: { count: constants.length, buffers: buffers.size, bytes: [...buffers.values()].reduce((a, b) => a + b, 0) },
    });
  }

  const namedData: NamedDataReport[] = [];
  for (const nd of named) {
    const usedBy = luthamLayers.filter((l) => l.codebookKey === nd.key).map((l) => ({ plan: l.plan, delegate: l.delegate }));
    const rep: NamedDataReport = { ...nd, kind: 'other', usedBy };
    if (nd.bytes >= 8 && nd.bytes <= MAX_CODEBOOK_BYTES) {
      const head = await pte.readSegment(nd.segmentIndex, 8);
      if (isCodebook(head)) {
        const bytes = await pte.readSegment(nd.segmentIndex);
        rep.codebook = readCodebook(bytes, `${pte.path}: codebook ${nd.key}`);
        rep.kind = 'lutham-codebook';
      }
    }
    if (usedBy.length > 0 && !rep.codebook) problems.push(`named data ${nd.key} is used as a codebook but is not a LUTHAM codebook buffer`);
    namedData.push(rep);
  }
  for (const l of luthamLayers) {
    const nd = namedData.find((n) => n.key === l.codebookKey);
    if (!nd) {
      problems.push(`delegate ${l.plan}#${l.delegate}: codebook ${l.codebookKey} is not in the named data`);
    } else if (nd.codebook && (nd.codebook.size !== l.codebookSize || nd.codebook.dim !== l.codebookDim)) {
      problems.push(`delegate ${l.plan}#${l.delegate}: payload expects a ${l.codebookSize}x${l.codebookDim} codebook, ${nd.key} is ${nd.codebook.size}x${nd.codebook.dim}`);
    }
  }
  for (const s of segments) if (s.uses.length === 0 && s.bytes > 0) problems.push(`segment ${s.index} (${s.bytes} bytes) is not referenced`);

  const allBuffers = constantBufferBytes(plans);
  const report: InspectReport = {
    path: pte.path,
    fileBytes: pte.fileSize,
    identifier: 'ET12',
    version: pte.program.version(),
    programBytes: pte.programSize,
    extendedHeader: pte.header,
    plans: planReports,
    segments,
    namedData,
    constants: {
      ...storage,
      usedBytes: [...allBuffers.values()].reduce((a, b) => a + b, 0),
      tensorCount: plans.reduce((a, p) => a + p.constants.length, 0),
    },
    luthamLayers,
    problems,
  };
  return { report, plans };
}

function valueText(v: ValueDesc): string {
  if (v.tensor) return `#${v.index} ${v.tensor.dtype}[${v.tensor.shape.join(', ')}]`;
  return `#${v.index} ${v.type}`;
}

function quantText(q: { bits: number; scaleCount: number }): string {
  return q.bits === 32 ? 'fp32' : `int${q.bits}/${q.scaleCount}s`;
}

/** The human-readable form of an InspectReport. */
export function formatInspect(r: InspectReport): string {
  const out: string[] = [];
  const eh = r.extendedHeader;
  out.push(`${r.path}: ${bytesCell(r.fileBytes)}, ${r.identifier} v${r.version}`);
  out.push(
    eh
      ? `  program ${bytesCell(r.programBytes)}; segment data ${bytesCell(eh.segmentDataSize)} at offset ${num(eh.segmentBaseOffset)}`
      : `  program ${bytesCell(r.programBytes)}; no extended header (no segments)`,
  );
  for (const p of r.plans) {
    out.push('');
    out.push(`Plan "${p.name}": ${num(p.valueCount)} values, ${num(p.instructionCount)} instructions`);
    out.push(`  inputs:  ${p.inputs.map(valueText).join('; ') || '-'}`);
    out.push(`  outputs: ${p.outputs.map(valueText).join('; ') || '-'}`);
    out.push(`  operators (${p.operators.length}): ${p.operators.join(', ') || '-'}`);
    out.push(`  memory plan: non_const_buffer_sizes [${p.nonConstBufferSizes.join(', ')}] = ${bytesCell(p.plannedBytes)} planned`);
    out.push(`  constants: ${num(p.constants.count)} tensors in ${num(p.constants.buffers)} buffers, ${bytesCell(p.constants.bytes)}`);
    if (p.delegates.length > 0) {
      out.push(`  delegates (${p.delegates.length}):`);
      const rows = p.delegates.map((d) => [
        String(d.index),
        d.backendId,
        d.location === 'segment' ? `segment ${d.dataIndex}` : `inline ${d.dataIndex}`,
        num(d.bytes),
        d.compileSpecs.map((c) => c.key).join(',') || '-',
      ]);
      out.push(indent(table(['#', 'backend', 'location', 'bytes', 'compile specs'], rows, [0, 3]), '    '));
    }
  }
  if (r.luthamLayers.length > 0) {
    out.push('');
    out.push(`LUTHAM layers (${r.luthamLayers.length}):`);
    const keys = [...new Set(r.luthamLayers.map((l) => l.codebookKey))];
    const rows = r.luthamLayers.map((l) => [
      `${l.plan}#${l.delegate}`,
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
      num(l.bytes),
    ]);
    out.push(indent(table(['delegate', 'in->out', 'grid', 'order', 'K', 'idx bits', 'gains', 'biases', 'base', 'codebook', 'R^2', 'bytes'], rows, [2, 3, 4, 5, 10, 11])));
    out.push(indent('gains/biases/base: fp32, or intN/Ss = N-bit ints with S per-output float scales (outputs padded to panels of 16)'));
    out.push(indent(keys.map((k, i) => `cb${i} = ${k}`).join('\n')));
  }
  out.push('');
  out.push(`Segments (${r.segments.length}):`);
  if (r.segments.length > 0) {
    const rows = r.segments.map((s) => [String(s.index), num(s.offset), num(s.bytes), s.uses.join('; ') || '(unused)']);
    out.push(indent(table(['#', 'offset', 'bytes', 'use'], rows, [0, 1, 2])));
  }
  out.push('');
  out.push(`Named data (${r.namedData.length}):`);
  if (r.namedData.length > 0) {
    const rows = r.namedData.map((n) => [
      n.key,
      String(n.segmentIndex),
      num(n.bytes),
      n.codebook ? `codebook ${n.codebook.size}x${n.codebook.dim} ${quantText(n.codebook.values)}` : n.kind,
      n.usedBy.length === 0 ? '-' : `${n.usedBy.length} delegates: ${n.usedBy.map((u) => `${u.plan}#${u.delegate}`).join(', ')}`,
    ]);
    out.push(indent(table(['key', 'segment', 'bytes', 'kind', 'used by'], rows, [1, 2])));
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
    for (const p of r.problems) out.push(`  - ${p}`);
  }
  return out.join('\n') + '\n';
}
