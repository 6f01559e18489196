// `lutham compare`: where the bytes of a Dense and a SHARe-KAN .pte go.
//
// Every byte of a file lands in exactly one category, so the categories add up to the
// file size and the overall ratio is the ratio of the file sizes:
//
//   kanWeights      SHARe-KAN file: LuthamBackend delegate payloads (inline or segment).
//                   Dense file: constant tensors that are NOT also constants of the
//                   SHARe-KAN file (see below).
//   codebook        named data whose buffer is a LUTHAM codebook ("LTCB"); one segment
//                   however many delegates share it.
//   otherConstants  every other constant: constant tensors of a file with LuthamBackend
//                   delegates (what stayed outside the KAN layers, e.g. the backbone),
//                   dense constants identical to one of those, other backends' payloads,
//                   other named data, mutable data segments, unreferenced segments.
//   program         the flatbuffer program, minus inline constants and inline delegate data.
//   padding         alignment: between program and segments, between segments, and
//                   between constant tensors inside the constant segment.
//
// The rule for the Dense file: exporting a SHARe-KAN model keeps everything outside the
// KAN heads (backbone, ...) as ordinary constants, bit-identical to the Dense model's.
// So a Dense constant that equals (same dtype, shape and bytes) a constant of the
// SHARe-KAN file is "other"; the rest are the KAN layers' weights. Only constants whose
// size matches one in the partner are read (hashed in bounded chunks); with
// `--backbone none` nothing is read at all. Without a partner every constant of a file
// without LuthamBackend delegates counts as KAN weights.
import { createHash } from 'node:crypto';

import { PteFile } from './file.js';
import { inspectWithPlans, LUTHAM_BACKEND_ID, type InspectReport } from './inspect.js';
import { readPtd } from './ptd.js';
import type { TensorDesc } from './program.js';

export const CATEGORIES = ['kanWeights', 'codebook', 'otherConstants', 'program', 'padding'] as const;
export type Category = (typeof CATEGORIES)[number];

export const CATEGORY_LABELS: Record<Category | 'total' | 'planned', string> = {
  kanWeights: 'KAN weights / payloads',
  codebook: 'codebook',
  otherConstants: 'other constants',
  program: 'flatbuffer program',
  padding: 'padding',
  total: 'total (file size)',
  planned: 'planned memory',
};

export const CATEGORY_RULES =
  'kanWeights: LuthamBackend payloads; in a file without them, constant tensors not identical to a constant of the SHARe-KAN file. ' +
  'codebook: LTCB named data (each segment once). otherConstants: all other constants, delegate payloads, named and mutable data. ' +
  'program: flatbuffer minus inline constants/delegate data. padding: alignment gaps. Categories sum to the file size.';

export interface Breakdown {
  path: string;
  fileBytes: number;
  bytes: Record<Category, number>;
  /** Planned memory (sum of non_const_buffer_sizes[1..]) of all plans; delegate scratch is not included. */
  plannedBytes: number;
  planned: { plan: string; bytes: number; nonConstBufferSizes: number[] }[];
  luthamDelegates: number;
  codebookSegments: number;
  /** Constant tensors (buffers) classified as other because the partner file has them too. */
  sharedConstantBuffers: number;
}

export interface Comparison {
  dense: Breakdown;
  lutham: Breakdown;
  /** The KAN part of each file: kanWeights + codebook, and dense / lutham. */
  kanPart: { dense: number; lutham: number; ratio: number | null };
  /** The SHARe-KAN program's .ptd (export --external-data): its file and codebook bytes count in kanPart and ratios.total. */
  external?: { path: string; fileBytes: number; codebookBytes: number };
  /** dense / lutham per category (null where lutham has 0 bytes). */
  ratios: Record<Category | 'total' | 'planned', number | null>;
  rules: string;
  notes: string[];
}

interface ConstantBuffer {
  idx: number;
  /** Absolute file offset. */
  offset: number;
  nbytes: number;
  /** dtype + shape of one tensor using it. */
  signature: string;
}

/** Constant buffers of a file with their file positions (segment storage only). */
function constantBuffers(pte: PteFile, report: InspectReport, tensors: TensorDesc[]): ConstantBuffer[] {
  const c = report.constants;
  if (c.location !== 'segment' || c.segmentIndex === null) return [];
  const base = pte.segment(c.segmentIndex).offset;
  const byIdx = new Map<number, ConstantBuffer>();
  for (const t of tensors) {
    const prev = byIdx.get(t.dataBufferIdx);
    if (prev && prev.nbytes >= t.nbytes) continue;
    byIdx.set(t.dataBufferIdx, { idx: t.dataBufferIdx, offset: base + c.offsets[t.dataBufferIdx], nbytes: t.nbytes, signature: `${t.dtype}[${t.shape.join(',')}]` });
  }
  return [...byIdx.values()].sort((a, b) => a.idx - b.idx);
}

async function hashRange(pte: PteFile, offset: number, length: number): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of pte.stream(offset, length)) h.update(chunk);
  return h.digest('hex');
}

interface FileFacts {
  pte: PteFile;
  report: InspectReport;
  buffers: ConstantBuffer[];
}

async function facts(pte: PteFile): Promise<FileFacts> {
  const { report, plans } = await inspectWithPlans(pte);
  const tensors = plans.flatMap((p) => p.constants);
  return { pte, report, buffers: constantBuffers(pte, report, tensors) };
}

/** Buffer indices of `dense` equal to some constant buffer of `partner` (one-to-one). */
async function sharedBuffers(dense: FileFacts, partner: FileFacts): Promise<Set<number>> {
  const shared = new Set<number>();
  if (partner.buffers.length === 0) return shared;
  const pool = new Map<string, string[]>(); // signature -> hashes of partner buffers
  const partnerSigs = new Set(partner.buffers.map((b) => b.signature));
  const candidates = dense.buffers.filter((b) => partnerSigs.has(b.signature));
  if (candidates.length === 0) return shared;
  for (const b of partner.buffers) {
    const list = pool.get(b.signature) ?? [];
    list.push(await hashRange(partner.pte, b.offset, b.nbytes));
    pool.set(b.signature, list);
  }
  for (const b of candidates) {
    const list = pool.get(b.signature)!;
    const h = await hashRange(dense.pte, b.offset, b.nbytes);
    const at = list.indexOf(h);
    if (at >= 0) {
      list.splice(at, 1);
      shared.add(b.idx);
    }
  }
  return shared;
}

function breakdownOf(f: FileFacts, shared: Set<number>): Breakdown {
  const r = f.report;
  const bytes: Record<Category, number> = { kanWeights: 0, codebook: 0, otherConstants: 0, program: r.programBytes, padding: 0 };
  const hasLutham = r.luthamLayers.length > 0;
  let codebookSegments = 0;

  // Inline data lives inside the program: move it to its category.
  for (const p of r.plans) {
    for (const d of p.delegates) {
      if (d.location !== 'inline') continue;
      bytes.program -= d.bytes;
      bytes[d.backendId === LUTHAM_BACKEND_ID ? 'kanWeights' : 'otherConstants'] += d.bytes;
    }
  }
  const constantCategory = (idx: number): Category => (hasLutham || shared.has(idx) ? 'otherConstants' : 'kanWeights');
  if (r.constants.location === 'inline') {
    for (let i = 1; i < r.constants.spans.length; i++) {
      bytes.program -= r.constants.spans[i];
      bytes[constantCategory(i)] += r.constants.spans[i];
    }
  }

  // Segments: each counted once, by its first use.
  let attributed = 0;
  for (const s of r.segments) {
    attributed += s.bytes;
    const use = s.uses[0] ?? '';
    if (use === 'constants') {
      let used = 0;
      for (const b of f.buffers) {
        bytes[constantCategory(b.idx)] += b.nbytes;
        used += b.nbytes;
      }
      bytes.padding += s.bytes - used;
    } else if (use.startsWith('delegate ')) {
      const d = r.plans.flatMap((p) => p.delegates.map((x) => ({ p, x }))).find(({ p, x }) => use === `delegate ${p.name}#${x.index}`);
      bytes[d?.x.backendId === LUTHAM_BACKEND_ID ? 'kanWeights' : 'otherConstants'] += s.bytes;
    } else if (use.startsWith('named data ')) {
      const nd = r.namedData.find((n) => n.segmentIndex === s.index);
      if (nd?.kind === 'lutham-codebook') {
        bytes.codebook += s.bytes;
        codebookSegments++;
      } else {
        bytes.otherConstants += s.bytes;
      }
    } else {
      bytes.otherConstants += s.bytes;
    }
  }
  // Gaps: between program and segments, between segments, after the last one.
  bytes.padding += r.fileBytes - r.programBytes - attributed;

  return {
    path: r.path,
    fileBytes: r.fileBytes,
    bytes,
    plannedBytes: r.plans.reduce((a, p) => a + p.plannedBytes, 0),
    planned: r.plans.map((p) => ({ plan: p.name, bytes: p.plannedBytes, nonConstBufferSizes: p.nonConstBufferSizes })),
    luthamDelegates: r.luthamLayers.length,
    codebookSegments,
    sharedConstantBuffers: hasLutham ? 0 : shared.size,
  };
}

/** Byte categories of one file (no partner: every constant of a Dense file is a KAN weight). */
export async function breakdownPte(path: string): Promise<Breakdown> {
  return PteFile.with(path, async (pte) => breakdownOf(await facts(pte), new Set()));
}

function ratio(a: number, b: number): number | null {
  return b === 0 ? null : a / b;
}

/** Compares a Dense .pte with a SHARe-KAN .pte. */
export async function comparePte(densePath: string, luthamPath: string, dataPath?: string): Promise<Comparison> {
  const ptd = dataPath ? await readPtd(dataPath) : undefined;
  return PteFile.with(densePath, (densePte) =>
    PteFile.with(luthamPath, async (luthamPte) => {
      const d = await facts(densePte);
      const l = await facts(luthamPte);
      const dense = breakdownOf(d, await sharedBuffers(d, l));
      const lutham = breakdownOf(l, new Set());
      const ratios = {} as Comparison['ratios'];
      for (const c of CATEGORIES) ratios[c] = ratio(dense.bytes[c], lutham.bytes[c]);
      const external = ptd && {
        path: ptd.path,
        fileBytes: ptd.fileBytes,
        codebookBytes: ptd.entries.filter((e) => e.codebook).reduce((a, e) => a + e.bytes, 0),
      };
      ratios.total = ratio(dense.fileBytes, lutham.fileBytes + (external?.fileBytes ?? 0));
      ratios.planned = ratio(dense.plannedBytes, lutham.plannedBytes);
      const kanPart = {
        dense: dense.bytes.kanWeights + dense.bytes.codebook,
        lutham: lutham.bytes.kanWeights + lutham.bytes.codebook + (external?.codebookBytes ?? 0),
        ratio: null as number | null,
      };
      kanPart.ratio = ratio(kanPart.dense, kanPart.lutham);
      const notes: string[] = [];
      if (dense.luthamDelegates > 0) notes.push(`${densePath} has ${dense.luthamDelegates} LuthamBackend delegates: is it really the Dense file? (usage: compare <dense> <lutham>)`);
      if (lutham.luthamDelegates === 0) notes.push(`${luthamPath} has no LuthamBackend delegates: is it really the SHARe-KAN file?`);
      notes.push('planned memory counts ExecuTorch-planned buffers only; LuthamBackend scratch is allocated by the delegate at runtime');
      if (external) notes.push(`the codebooks are in ${external.path} (${external.fileBytes} bytes): the total ratio and the KAN part count it with ${luthamPath}`);
      return { dense, lutham, kanPart, ratios, ...(external ? { external } : {}), rules: CATEGORY_RULES, notes };
    }),
  );
}
