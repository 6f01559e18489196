// `lutham inspect`: a structured description of a .pte file.
//
// Reads the header and the flatbuffer program, then only the small things it shows in
// detail: LuthamBackend payloads and LUTHAM codebooks. Constant data and other
// backends' payloads are sized from the tables, never read.
import { LuthamError } from '../errors.js';
import { isCodebook, readCodebook, readPayload, type CodebookInfo, type LayerInfo } from '../payload/index.js';
import { decodeCodebook, decodePayload, verifyCodebookKey } from '../payload/verify.js';
import { PteFile, type ExtendedHeader } from './file.js';
import { readPtd, type PtdReport } from './ptd.js';
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
/** The compile spec with which LuthamBackend moves its codebooks to a .ptd (lower/partitioner.py). */
export const EXTERNAL_TAG_SPEC = 'external_tag';
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

/** One method (execution plan) in brief: what `run --method NAME` takes and gives. */
export interface MethodSummary {
  name: string;
  /** Shapes of the tensor inputs and outputs (null for a non-tensor value). */
  inputs: (number[] | null)[];
  outputs: (number[] | null)[];
  delegates: number;
  luthamDelegates: number;
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
  /** Every method in file order (export --methods per-head: backbone, forward, head_k). */
  methods: MethodSummary[];
  plans: PlanReport[];
  segments: SegmentReport[];
  namedData: NamedDataReport[];
  constants: ConstantStorage & { usedBytes: number; tensorCount: number };
  /** LuthamBackend layers in plan order. */
  luthamLayers: (DelegateRef & LayerInfo)[];
  /** Codebook keys the LuthamBackend delegates read from a .ptd (export --external-data), in first-use order. */
  externalKeys: string[];
  /** With `data`: the .ptd checked against externalKeys. */
  data?: PtdReport;
  /** Non-fatal inconsistencies (missing codebook, K mismatch, unused segment ...). */
  problems: string[];
  /** With `verify`: what the full decode checked, and every check that failed. */
  verified?: VerifyReport;
}

export interface VerifyReport {
  /** Payloads decoded with their CRC-32 and every index checked. */
  payloads: number;
  /** Codebooks decoded, and of them those whose bytes were checked against the SHA-256 in their key. */
  codebooks: number;
  failures: string[];
}

export interface InspectOptions {
  /** Also decode every LUTHAM payload and codebook: CRC-32, indices, codebook hashes (inspect --verify). */
  verify?: boolean;
  /** The .ptd the program's external data comes from: every key it expects must be there. */
  data?: string;
}

/** Describes the .pte at `path` (throws LuthamError on a bad file). */
export async function inspectPte(path: string, options: InspectOptions = {}): Promise<InspectReport> {
  return PteFile.with(path, async (pte) => (await inspectWithPlans(pte, options)).report);
}

/** Runs `check`; a LuthamError it throws becomes one line of `failures`. */
function attempt(failures: string[], check: () => void): void {
  try {
    check();
  } catch (e) {
    if (!(e instanceof LuthamError)) throw e;
    failures.push(e.message);
  }
}

/** The inspect report plus the full plan descriptions (with every constant tensor) it was built from. */
export async function inspectWithPlans(pte: PteFile, options: InspectOptions = {}): Promise<{ report: InspectReport; plans: PlanDesc[] }> {
  const problems: string[] = [];
  const verified: VerifyReport | undefined = options.verify ? { payloads: 0, codebooks: 0, failures: [] } : undefined;
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
  const externalDelegates = new Set<string>();
  const planReports: PlanReport[] = [];
  for (const plan of plans) {
    const delegates: DelegateReport[] = [];
    for (const d of plan.delegates) {
      const ref = `${plan.name}#${d.index}`;
      if (d.location === 'segment') useSegment(d.dataIndex, `delegate ${ref}`);
      const rep: DelegateReport = { ...d };
      if (d.backendId === LUTHAM_BACKEND_ID) {
        const bytes = await readDelegateData(pte, d);
        const what = `${pte.path}: ${LUTHAM_BACKEND_ID} payload of delegate ${ref}`;
        rep.lutham = readPayload(bytes, what);
        if (verified) {
          attempt(verified.failures, () => decodePayload(bytes, what));
          verified.payloads++;
        }
        luthamLayers.push({ plan: plan.name, delegate: d.index, ...rep.lutham });
        if (d.compileSpecs.some((c) => c.key === EXTERNAL_TAG_SPEC)) externalDelegates.add(ref);
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
        const what = `${pte.path}: codebook ${nd.key}`;
        rep.codebook = readCodebook(bytes, what);
        rep.kind = 'lutham-codebook';
        if (verified) {
          attempt(verified.failures, () => decodeCodebook(bytes, what));
          attempt(verified.failures, () => verifyCodebookKey(bytes, nd.key, what));
          verified.codebooks++;
        }
      }
    }
    if (usedBy.length > 0 && !rep.codebook) problems.push(`named data ${nd.key} is used as a codebook but is not a LUTHAM codebook buffer`);
    namedData.push(rep);
  }
  const externalKeys: string[] = [];
  const data = options.data ? await readPtd(options.data, { verify: options.verify }) : undefined;
  if (data && verified) {
    verified.codebooks += data.verified!.codebooks;
    verified.failures.push(...data.verified!.failures);
  }
  for (const l of luthamLayers) {
    const nd = namedData.find((n) => n.key === l.codebookKey);
    const external = externalDelegates.has(`${l.plan}#${l.delegate}`);
    if (!nd && external) {
      if (!externalKeys.includes(l.codebookKey)) externalKeys.push(l.codebookKey);
      const entry = data?.entries.find((e) => e.key === l.codebookKey);
      if (data && !entry) problems.push(`delegate ${l.plan}#${l.delegate}: codebook ${l.codebookKey} is not in ${data.path}`);
      else if (entry?.codebook && (entry.codebook.size !== l.codebookSize || entry.codebook.dim !== l.codebookDim)) {
        problems.push(`delegate ${l.plan}#${l.delegate}: payload expects a ${l.codebookSize}x${l.codebookDim} codebook, ${entry.key} in ${data!.path} is ${entry.codebook.size}x${entry.codebook.dim}`);
      }
    } else if (!nd) {
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
    methods: planReports.map((p) => ({
      name: p.name,
      inputs: p.inputs.map((v) => v.tensor?.shape ?? null),
      outputs: p.outputs.map((v) => v.tensor?.shape ?? null),
      delegates: p.delegates.length,
      luthamDelegates: p.delegates.filter((d) => d.backendId === LUTHAM_BACKEND_ID).length,
    })),
    plans: planReports,
    segments,
    namedData,
    constants: {
      ...storage,
      usedBytes: [...allBuffers.values()].reduce((a, b) => a + b, 0),
      tensorCount: plans.reduce((a, p) => a + p.constants.length, 0),
    },
    luthamLayers,
    externalKeys,
    ...(data ? { data } : {}),
    problems,
    ...(verified ? { verified } : {}),
  };
  return { report, plans };
}
