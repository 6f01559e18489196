// Plain-data views of a Program's execution plans, built with the generated accessors.
import { AllocationDetails } from '../generated/executorch-flatbuffer/allocation-details.js';
import { BackendDelegate } from '../generated/executorch-flatbuffer/backend-delegate.js';
import { BackendDelegateInlineData } from '../generated/executorch-flatbuffer/backend-delegate-inline-data.js';
import { Buffer as FbBuffer } from '../generated/executorch-flatbuffer/buffer.js';
import { CompileSpec } from '../generated/executorch-flatbuffer/compile-spec.js';
import { DataLocation } from '../generated/executorch-flatbuffer/data-location.js';
import { EValue } from '../generated/executorch-flatbuffer/evalue.js';
import { ExecutionPlan } from '../generated/executorch-flatbuffer/execution-plan.js';
import { KernelTypes } from '../generated/executorch-flatbuffer/kernel-types.js';
import { NamedData } from '../generated/executorch-flatbuffer/named-data.js';
import { DelegateCall } from '../generated/executorch-flatbuffer/delegate-call.js';
import { FreeCall } from '../generated/executorch-flatbuffer/free-call.js';
import { Instruction } from '../generated/executorch-flatbuffer/instruction.js';
import { InstructionArguments } from '../generated/executorch-flatbuffer/instruction-arguments.js';
import { JumpFalseCall } from '../generated/executorch-flatbuffer/jump-false-call.js';
import { KernelCall } from '../generated/executorch-flatbuffer/kernel-call.js';
import { MoveCall } from '../generated/executorch-flatbuffer/move-call.js';
import { Operator } from '../generated/executorch-flatbuffer/operator.js';
import { ScalarType } from '../generated/executorch-flatbuffer/scalar-type.js';
import { SubsegmentOffsets } from '../generated/executorch-flatbuffer/subsegment-offsets.js';
import { Tensor } from '../generated/executorch-flatbuffer/tensor.js';
import { LuthamError } from '../errors.js';
import { guardParse, type PteFile } from './file.js';

/** Bytes per element of each ScalarType (sub-byte packed types count as 1). */
const ELEMENT_SIZE: Partial<Record<ScalarType, number>> = {
  [ScalarType.BYTE]: 1, [ScalarType.CHAR]: 1, [ScalarType.SHORT]: 2, [ScalarType.INT]: 4,
  [ScalarType.LONG]: 8, [ScalarType.HALF]: 2, [ScalarType.FLOAT]: 4, [ScalarType.DOUBLE]: 8,
  [ScalarType.BOOL]: 1, [ScalarType.QINT8]: 1, [ScalarType.QUINT8]: 1, [ScalarType.QINT32]: 4,
  [ScalarType.BFLOAT16]: 2, [ScalarType.QUINT4X2]: 1, [ScalarType.QUINT2X4]: 1, [ScalarType.BITS16]: 2,
  [ScalarType.FLOAT8E5M2]: 1, [ScalarType.FLOAT8E4M3FN]: 1, [ScalarType.FLOAT8E5M2FNUZ]: 1,
  [ScalarType.FLOAT8E4M3FNUZ]: 1, [ScalarType.UINT16]: 2, [ScalarType.UINT32]: 4, [ScalarType.UINT64]: 8,
};

export interface TensorDesc {
  dtype: string;
  shape: number[];
  nbytes: number;
  /** Index into the constant buffers (0 = none). */
  dataBufferIdx: number;
  /** Memory-planned placement, when planned. */
  memoryId: number | null;
  memoryOffset: number | null;
}

export interface ValueDesc {
  index: number;
  type: string;
  tensor?: TensorDesc;
}

export type Location = 'inline' | 'segment';

export interface DelegateDesc {
  index: number;
  backendId: string;
  location: Location;
  /** Index into backend_delegate_data (inline) or segments (segment). */
  dataIndex: number;
  bytes: number;
  compileSpecs: { key: string; bytes: number }[];
}

export interface PlanDesc {
  index: number;
  name: string;
  valueCount: number;
  inputs: ValueDesc[];
  outputs: ValueDesc[];
  operators: string[];
  instructionCount: number;
  delegates: DelegateDesc[];
  /** ExecutionPlan.non_const_buffer_sizes (entry 0 is reserved by ExecuTorch). */
  nonConstBufferSizes: number[];
  /** Sum of the planned buffers (entries 1..). */
  plannedBytes: number;
  /** Constant tensors of this plan (data_buffer_idx > 0, not memory-planned). */
  constants: TensorDesc[];
}

export interface NamedDataDesc {
  key: string;
  segmentIndex: number;
  bytes: number;
}

export interface ConstantStorage {
  /** 'segment' (constant_segment) or 'inline' (legacy Program.constant_buffer) or 'none'. */
  location: 'segment' | 'inline' | 'none';
  segmentIndex: number | null;
  /** Number of constant buffers, not counting the reserved entry 0. */
  bufferCount: number;
  /** Start of each buffer relative to the constant data (index 0 reserved). */
  offsets: number[];
  /** Total bytes of the constant data (segment size, or sum of inline buffers). */
  bytes: number;
  /** Per buffer index: inline length (inline) or span up to the next offset (segment). */
  spans: number[];
}

function str(v: string | Uint8Array | null): string {
  return typeof v === 'string' ? v : v ? new TextDecoder().decode(v) : '';
}

export function describeTensor(t: Tensor): TensorDesc {
  const shape: number[] = [];
  for (let i = 0; i < t.sizesLength(); i++) shape.push(t.sizes(i)!);
  const st = t.scalarType();
  const elem = ELEMENT_SIZE[st] ?? 1;
  const alloc = t.allocationInfo(new AllocationDetails());
  let memoryOffset: number | null = null;
  if (alloc) memoryOffset = alloc.memoryOffsetLow() + alloc.memoryOffsetHigh() * 2 ** 32;
  return {
    dtype: ScalarType[st] ?? `scalar_type_${st}`,
    shape,
    nbytes: shape.reduce((a, b) => a * b, 1) * elem,
    dataBufferIdx: t.dataBufferIdx(),
    memoryId: alloc ? alloc.memoryId() : null,
    memoryOffset,
  };
}

export function describeValue(plan: ExecutionPlan, index: number): ValueDesc {
  const v = plan.values(index, new EValue());
  if (!v) return { index, type: 'missing' };
  const type = KernelTypes[v.valType()] ?? `type_${v.valType()}`;
  if (v.valType() === KernelTypes.Tensor) return { index, type, tensor: describeTensor(v.val(new Tensor()) as Tensor) };
  return { index, type };
}

/** Byte length of a delegate's processed data. */
export function delegateBytes(pte: PteFile, location: Location, dataIndex: number): number {
  if (location === 'inline') {
    const d = pte.program.backendDelegateData(dataIndex, new BackendDelegateInlineData());
    if (!d) throw new LuthamError(`${pte.path} is corrupt: inline delegate data ${dataIndex} does not exist`);
    return d.dataLength();
  }
  return pte.segment(dataIndex).size;
}

/**
 * What is wrong with one instruction's indices (values, operators, delegates, jump target), or
 * null. ExecuTorch 1.5.1 follows some of them unchecked (a nameless operator is called, SIGSEGV);
 * lutham_runner's runner/program_check.cpp checks the same.
 */
function instructionProblem(plan: ExecutionPlan, ins: Instruction, instructionCount: number): string | null {
  const valueOk = (v: number) => v >= 0 && v < plan.valuesLength();
  const argsOk = (args: Int32Array | null) => args !== null && args.every(valueOk);
  switch (ins.instrArgsType()) {
    case InstructionArguments.KernelCall: {
      const k = ins.instrArgs(new KernelCall()) as KernelCall | null;
      if (!k || k.opIndex() < 0 || k.opIndex() >= plan.operatorsLength()) return 'a kernel call names no operator of the plan';
      return argsOk(k.argsArray()) ? null : "a kernel call's arguments are not values of the plan";
    }
    case InstructionArguments.DelegateCall: {
      const d = ins.instrArgs(new DelegateCall()) as DelegateCall | null;
      if (!d || d.delegateIndex() < 0 || d.delegateIndex() >= plan.delegatesLength()) return 'a delegate call names no delegate of the plan';
      return argsOk(d.argsArray()) ? null : "a delegate call's arguments are not values of the plan";
    }
    case InstructionArguments.MoveCall: {
      const m = ins.instrArgs(new MoveCall()) as MoveCall | null;
      return m && valueOk(m.moveFrom()) && valueOk(m.moveTo()) ? null : 'a move names no value of the plan';
    }
    case InstructionArguments.JumpFalseCall: {
      const j = ins.instrArgs(new JumpFalseCall()) as JumpFalseCall | null;
      return j && valueOk(j.condValueIndex()) && j.destinationInstruction() >= 0 && j.destinationInstruction() < instructionCount
        ? null : 'a jump names no value or instruction of the plan';
    }
    case InstructionArguments.FreeCall: {
      const f = ins.instrArgs(new FreeCall()) as FreeCall | null;
      return f && valueOk(f.valueIndex()) ? null : 'a free names no value of the plan';
    }
    default:
      return 'an instruction of unknown kind';
  }
}

export function describePlans(pte: PteFile): PlanDesc[] {
  return guardParse(`${pte.path}: the execution plans`, () => {
    const prog = pte.program;
    const plans: PlanDesc[] = [];
    for (let p = 0; p < prog.executionPlanLength(); p++) {
      const plan = prog.executionPlan(p, new ExecutionPlan())!;
      const inputs: ValueDesc[] = [];
      for (let i = 0; i < plan.inputsLength(); i++) inputs.push(describeValue(plan, plan.inputs(i)!));
      const outputs: ValueDesc[] = [];
      for (let i = 0; i < plan.outputsLength(); i++) outputs.push(describeValue(plan, plan.outputs(i)!));
      const operators: string[] = [];
      for (let i = 0; i < plan.operatorsLength(); i++) {
        const op = plan.operators(i, new Operator())!;
        if (!op.name()) throw new LuthamError(`${pte.path} is corrupt: operator ${i} of plan ${p} has no name`);
        const overload = str(op.overload());
        operators.push(overload ? `${str(op.name())}.${overload}` : str(op.name()));
      }
      let instructionCount = 0;
      for (let c = 0; c < plan.chainsLength(); c++) {
        const chain = plan.chains(c)!;
        instructionCount += chain.instructionsLength();
        for (let i = 0; i < chain.instructionsLength(); i++) {
          const problem = instructionProblem(plan, chain.instructions(i, new Instruction())!, chain.instructionsLength());
          if (problem) throw new LuthamError(`${pte.path} is corrupt: instruction ${i} of chain ${c}: ${problem} (plan ${p})`);
        }
      }
      const delegates: DelegateDesc[] = [];
      for (let d = 0; d < plan.delegatesLength(); d++) {
        const del = plan.delegates(d, new BackendDelegate())!;
        const ref = del.processed();
        if (!ref) throw new LuthamError(`${pte.path} is corrupt: delegate ${d} of plan ${p} has no processed data`);
        const location: Location = ref.location() === DataLocation.SEGMENT ? 'segment' : 'inline';
        const compileSpecs: { key: string; bytes: number }[] = [];
        for (let c = 0; c < del.compileSpecsLength(); c++) {
          const cs = del.compileSpecs(c, new CompileSpec())!;
          compileSpecs.push({ key: str(cs.key()), bytes: cs.valueLength() });
        }
        delegates.push({
          index: d,
          backendId: str(del.id()),
          location,
          dataIndex: ref.index(),
          bytes: delegateBytes(pte, location, ref.index()),
          compileSpecs,
        });
      }
      const nonConstBufferSizes: number[] = [];
      for (let i = 0; i < plan.nonConstBufferSizesLength(); i++) nonConstBufferSizes.push(Number(plan.nonConstBufferSizes(i)!));
      const constants: TensorDesc[] = [];
      for (let i = 0; i < plan.valuesLength(); i++) {
        const v = plan.values(i, new EValue())!;
        if (v.valType() !== KernelTypes.Tensor) continue;
        const t = describeTensor(v.val(new Tensor()) as Tensor);
        if (t.dataBufferIdx > 0 && t.memoryId === null) constants.push(t);
      }
      plans.push({
        index: p,
        name: str(plan.name()),
        valueCount: plan.valuesLength(),
        inputs,
        outputs,
        operators,
        instructionCount,
        delegates,
        nonConstBufferSizes,
        plannedBytes: nonConstBufferSizes.slice(1).reduce((a, b) => a + b, 0),
        constants,
      });
    }
    return plans;
  });
}

export function describeNamedData(pte: PteFile): NamedDataDesc[] {
  return guardParse(`${pte.path}: the named data table`, () => {
    const out: NamedDataDesc[] = [];
    for (let i = 0; i < pte.program.namedDataLength(); i++) {
      const nd = pte.program.namedData(i, new NamedData())!;
      const segmentIndex = nd.segmentIndex();
      out.push({ key: str(nd.key()), segmentIndex, bytes: pte.segment(segmentIndex).size });
    }
    return out;
  });
}

export function describeConstantStorage(pte: PteFile): ConstantStorage {
  return guardParse(`${pte.path}: the constant data`, () => {
    const prog = pte.program;
    const inlineCount = prog.constantBufferLength();
    const cs = prog.constantSegment(new SubsegmentOffsets());
    const offsets: number[] = [];
    if (cs) for (let i = 0; i < cs.offsetsLength(); i++) offsets.push(Number(cs.offsets(i)!));
    if (cs && offsets.length > 0 && prog.segmentsLength() > 0) {
      const seg = pte.segment(cs.segmentIndex());
      const spans = offsets.map((o, i) => (i === 0 ? 0 : (i + 1 < offsets.length ? offsets[i + 1] : seg.size) - o));
      if (offsets.some((o) => o > seg.size)) throw new LuthamError(`${pte.path} is corrupt: constant offsets run past the ${seg.size}-byte constant segment`);
      return { location: 'segment', segmentIndex: seg.index, bufferCount: Math.max(0, offsets.length - 1), offsets, bytes: seg.size, spans };
    }
    if (inlineCount > 0) {
      const spans: number[] = [];
      for (let i = 0; i < inlineCount; i++) spans.push(prog.constantBuffer(i, new FbBuffer())!.storageLength());
      return { location: 'inline', segmentIndex: null, bufferCount: Math.max(0, inlineCount - 1), offsets: [], bytes: spans.reduce((a, b) => a + b, 0), spans };
    }
    return { location: 'none', segmentIndex: null, bufferCount: 0, offsets: [], bytes: 0, spans: [] };
  });
}

/** Segment indices of mutable data (initial values of mutable buffers). */
export function mutableSegmentIndices(pte: PteFile): number[] {
  return guardParse(`${pte.path}: the mutable data segments`, () => {
    const out: number[] = [];
    for (let i = 0; i < pte.program.mutableDataSegmentsLength(); i++) {
      out.push(pte.program.mutableDataSegments(i, new SubsegmentOffsets())!.segmentIndex());
    }
    return out;
  });
}

/** Reads a delegate's processed bytes (inline data or its segment). */
export async function readDelegateData(pte: PteFile, d: DelegateDesc): Promise<Uint8Array> {
  if (d.location === 'segment') return pte.readSegment(d.dataIndex);
  return guardParse(`${pte.path}: inline delegate data ${d.dataIndex}`, () => {
    const inl = pte.program.backendDelegateData(d.dataIndex, new BackendDelegateInlineData())!;
    return (inl.dataArray() ?? new Uint8Array(0)).slice();
  });
}

/** Bytes of every constant buffer (max nbytes over the tensors that use it), by buffer index. */
export function constantBufferBytes(plans: PlanDesc[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const plan of plans) {
    for (const t of plan.constants) out.set(t.dataBufferIdx, Math.max(out.get(t.dataBufferIdx) ?? 0, t.nbytes));
  }
  return out;
}
