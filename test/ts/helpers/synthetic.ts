// A synthetic but well-formed .pte with a huge constant segment, written as a sparse file
// (no disk or time cost): for checking that the readers stay within bounded memory on
// files the size of the 50-head Dense export (~3 GB) without exporting one.
import * as flatbuffers from 'flatbuffers';
import { open } from 'node:fs/promises';

import { DataSegment } from '../../../ts/generated/executorch-flatbuffer/data-segment.js';
import { EValue } from '../../../ts/generated/executorch-flatbuffer/evalue.js';
import { ExecutionPlan } from '../../../ts/generated/executorch-flatbuffer/execution-plan.js';
import { KernelTypes } from '../../../ts/generated/executorch-flatbuffer/kernel-types.js';
import { Program } from '../../../ts/generated/executorch-flatbuffer/program.js';
import { ScalarType } from '../../../ts/generated/executorch-flatbuffer/scalar-type.js';
import { SubsegmentOffsets } from '../../../ts/generated/executorch-flatbuffer/subsegment-offsets.js';
import { Tensor } from '../../../ts/generated/executorch-flatbuffer/tensor.js';

const HEADER_LENGTH = 32; // "eh00", u32 length, 3 x u64
const SEGMENT_ALIGNMENT = 128;

/** Writes a .pte whose constant segment holds `tensors` float tensors of shape [rows, cols]. */
export async function writeSyntheticPte(path: string, tensors: number, rows: number, cols: number): Promise<number> {
  const b = new flatbuffers.Builder(1 << 16);
  const nbytes = rows * cols * 4;
  const values: number[] = [];
  for (let i = 0; i < tensors; i++) {
    const sizes = Tensor.createSizesVector(b, [rows, cols]);
    const dimOrder = Tensor.createDimOrderVector(b, [0, 1]);
    Tensor.startTensor(b);
    Tensor.addScalarType(b, ScalarType.FLOAT);
    Tensor.addSizes(b, sizes);
    Tensor.addDimOrder(b, dimOrder);
    Tensor.addDataBufferIdx(b, i + 1);
    values.push(EValue.createEValue(b, KernelTypes.Tensor, Tensor.endTensor(b)));
  }
  const name = b.createString('forward');
  const valuesVec = ExecutionPlan.createValuesVector(b, values);
  const inputs = ExecutionPlan.createInputsVector(b, []);
  const outputs = ExecutionPlan.createOutputsVector(b, [0]);
  const ncbs = ExecutionPlan.createNonConstBufferSizesVector(b, [0n]);
  const chains = ExecutionPlan.createChainsVector(b, []);
  const operators = ExecutionPlan.createOperatorsVector(b, []);
  const delegates = ExecutionPlan.createDelegatesVector(b, []);
  ExecutionPlan.startExecutionPlan(b);
  ExecutionPlan.addName(b, name);
  ExecutionPlan.addValues(b, valuesVec);
  ExecutionPlan.addInputs(b, inputs);
  ExecutionPlan.addOutputs(b, outputs);
  ExecutionPlan.addNonConstBufferSizes(b, ncbs);
  ExecutionPlan.addChains(b, chains);
  ExecutionPlan.addOperators(b, operators);
  ExecutionPlan.addDelegates(b, delegates);
  const plan = ExecutionPlan.endExecutionPlan(b);

  const offsets: bigint[] = [0n];
  for (let i = 0; i < tensors; i++) offsets.push(BigInt(i * nbytes));
  const segmentSize = tensors * nbytes;
  const segs = Program.createSegmentsVector(b, [DataSegment.createDataSegment(b, 0n, BigInt(segmentSize))]);
  const cs = SubsegmentOffsets.createSubsegmentOffsets(b, 0, SubsegmentOffsets.createOffsetsVector(b, offsets));
  const plans = Program.createExecutionPlanVector(b, [plan]);
  const constantBuffer = Program.createConstantBufferVector(b, []);
  const delegateData = Program.createBackendDelegateDataVector(b, []);
  const namedData = Program.createNamedDataVector(b, []);
  Program.startProgram(b);
  Program.addVersion(b, 0);
  Program.addExecutionPlan(b, plans);
  Program.addSegments(b, segs);
  Program.addConstantSegment(b, cs);
  Program.addConstantBuffer(b, constantBuffer);
  Program.addBackendDelegateData(b, delegateData);
  Program.addNamedData(b, namedData);
  b.finish(Program.endProgram(b), 'ET12');
  const fb = b.asUint8Array();

  // Insert the extended header after the first 8 bytes; the root offset moves by its length.
  const programSize = fb.length + HEADER_LENGTH;
  const base = Math.ceil(programSize / SEGMENT_ALIGNMENT) * SEGMENT_ALIGNMENT;
  const head = new Uint8Array(programSize);
  const view = new DataView(head.buffer);
  head.set(fb.subarray(0, 8), 0);
  view.setUint32(0, new DataView(fb.buffer, fb.byteOffset).getUint32(0, true) + HEADER_LENGTH, true);
  head.set([0x65, 0x68, 0x30, 0x30], 8); // "eh00"
  view.setUint32(12, HEADER_LENGTH, true);
  view.setBigUint64(16, BigInt(programSize), true);
  view.setBigUint64(24, BigInt(base), true);
  view.setBigUint64(32, BigInt(segmentSize), true);
  head.set(fb.subarray(8), 8 + HEADER_LENGTH);

  const fh = await open(path, 'w');
  try {
    await fh.write(head, 0, head.length, 0);
    await fh.truncate(base + segmentSize); // sparse: the constants read as zeros
  } finally {
    await fh.close();
  }
  return base + segmentSize;
}
