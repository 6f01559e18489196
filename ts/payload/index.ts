// Readers for LUTHAM's own buffers on top of the generated code (schema/lutham.fbs):
// a LuthamBackend delegate payload (`Payload`, identifier "LTHM") and a shared codebook
// (`Codebook`, identifier "LTCB", stored in the .pte's named data).
//
// `readPayload`/`readCodebook` validate the buffer (identifier, every read in range,
// sizes consistent with the schema's packing rules) and return plain summaries;
// `decode*` unpack values for callers that want the numbers.
import { LuthamError } from '../errors.js';
import { Codebook } from '../generated/lutham/payload/codebook.js';
import { KanLayer } from '../generated/lutham/payload/kan-layer.js';
import { Payload } from '../generated/lutham/payload/payload.js';
import { QuantTensor } from '../generated/lutham/payload/quant-tensor.js';
import { BasisKind } from '../generated/lutham/payload/basis-kind.js';
import { CheckedByteBuffer, FlatbufferRangeError, fileIdentifier, showIdentifier } from '../pte/checked-buffer.js';

export const PAYLOAD_IDENTIFIER = 'LTHM';
export const CODEBOOK_IDENTIFIER = 'LTCB';
/** Payload schema versions this reader understands. */
export const KNOWN_SCHEMA_VERSIONS = [1];
export const FLOAT_BITS = 32;

export interface QuantInfo {
  rows: number;
  cols: number;
  /** 32 = float32 values; 2..8 = packed signed ints with one scale per row. */
  bits: number;
  /** Number of float32 values (bits == 32). */
  f32Count: number;
  /** Bytes of packed ints (bits < 32). */
  packedBytes: number;
  /** Number of per-row scales (bits < 32). */
  scaleCount: number;
  /** Bytes the tensor's data takes in the buffer (values + scales). */
  dataBytes: number;
}

export interface LayerInfo {
  schemaVersion: number;
  inFeatures: number;
  outFeatures: number;
  basis: string;
  gridSize: number;
  splineOrder: number;
  /** Knots stored: in_features rows, or one row shared by every input (uniform grid). */
  knotCount: number;
  knotsShared: boolean;
  codebookKey: string;
  /** K: number of codewords. */
  codebookSize: number;
  codebookDim: number;
  /** Bits per codeword index. */
  indexBits: number;
  indicesBytes: number;
  gains: QuantInfo;
  biases: QuantInfo;
  baseWeight: QuantInfo;
  /** R^2 of the compression, null when not recorded (NaN). */
  r2: number | null;
  /** Size of the whole payload buffer. */
  bytes: number;
}

export interface CodebookInfo {
  size: number;
  dim: number;
  values: QuantInfo;
  bytes: number;
}

function fail(what: string, msg: string): never {
  throw new LuthamError(`${what}: ${msg}`);
}

function packedLength(count: number, bits: number): number {
  return Math.ceil((count * bits) / 8);
}

function guard<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof LuthamError) throw e;
    if (e instanceof FlatbufferRangeError || e instanceof RangeError || e instanceof TypeError) fail(what, `garbage buffer (${e.message})`);
    throw e;
  }
}

function checkIdentifier(bytes: Uint8Array, expected: string, what: string, kind: string): void {
  if (bytes.length < 8) fail(what, `${bytes.length} bytes is too short for a ${kind}`);
  const id = fileIdentifier(bytes);
  if (id !== expected) fail(what, `not a ${kind} (identifier ${showIdentifier(id)}, expected "${expected}")`);
}

function quantInfo(t: QuantTensor | null, what: string, name: string): QuantInfo {
  if (!t) fail(what, `${name} is missing`);
  const rows = t.rows();
  const cols = t.cols();
  const bits = t.bits();
  const f32Count = t.f32Length();
  const packedBytes = t.packedLength();
  const scaleCount = t.scalesLength();
  const count = rows * cols;
  if (bits === FLOAT_BITS) {
    if (f32Count !== count) fail(what, `${name} is ${rows}x${cols} float32 but holds ${f32Count} values`);
  } else if (bits >= 2 && bits <= 8) {
    if (packedBytes !== packedLength(count, bits)) {
      fail(what, `${name} is ${rows}x${cols} at ${bits} bits (${packedLength(count, bits)} bytes) but holds ${packedBytes} packed bytes`);
    }
    if (scaleCount !== rows) fail(what, `${name} has ${scaleCount} scales for ${rows} rows`);
  } else {
    fail(what, `${name} has unsupported bit width ${bits}`);
  }
  return { rows, cols, bits, f32Count, packedBytes, scaleCount, dataBytes: f32Count * 4 + packedBytes + scaleCount * 4 };
}

/** Parses and validates a LuthamBackend payload. `what` names it in errors. */
export function readPayload(bytes: Uint8Array, what = 'LUTHAM payload'): LayerInfo {
  checkIdentifier(bytes, PAYLOAD_IDENTIFIER, what, 'LUTHAM payload');
  return guard(what, () => {
    const p = Payload.getRootAsPayload(new CheckedByteBuffer(bytes));
    const schemaVersion = p.schemaVersion();
    if (!KNOWN_SCHEMA_VERSIONS.includes(schemaVersion)) {
      fail(what, `unknown payload schema version ${schemaVersion} (this reader knows ${KNOWN_SCHEMA_VERSIONS.join(', ')})`);
    }
    const layer: KanLayer | null = p.layer();
    if (!layer) fail(what, 'has no layer');
    const grid = layer.grid();
    if (!grid) fail(what, 'has no grid');
    const inFeatures = layer.inFeatures();
    const outFeatures = layer.outFeatures();
    const gridSize = grid.gridSize();
    const splineOrder = grid.splineOrder();
    const knotCount = grid.knotsLength();
    const row = gridSize + 2 * splineOrder + 1;
    const knotsShared = knotCount === row && inFeatures !== 1;
    if (knotCount !== inFeatures * row && knotCount !== row) {
      fail(what, `grid has ${knotCount} knots, ${inFeatures} inputs at grid ${gridSize} order ${splineOrder} need ${inFeatures * row} (or ${row} shared)`);
    }
    const indexBits = layer.indexBits();
    if (indexBits < 1 || indexBits > 32) fail(what, `index width ${indexBits} bits is out of range`);
    const indicesBytes = layer.indicesLength();
    const edges = inFeatures * outFeatures;
    if (indicesBytes !== packedLength(edges, indexBits)) {
      fail(what, `${edges} indices of ${indexBits} bits need ${packedLength(edges, indexBits)} bytes, found ${indicesBytes}`);
    }
    const codebookSize = layer.codebookSize();
    const codebookDim = layer.codebookDim();
    if (codebookSize < 1 || (indexBits < 32 && codebookSize > 2 ** indexBits)) fail(what, `codebook size ${codebookSize} does not fit ${indexBits}-bit indices`);
    if (codebookDim !== gridSize + splineOrder) fail(what, `codebook dim ${codebookDim} != grid ${gridSize} + order ${splineOrder}`);
    const key = layer.codebookKey();
    if (!key) fail(what, 'has no codebook key');
    const gains = quantInfo(layer.gains(), what, 'gains');
    const biases = quantInfo(layer.biases(), what, 'biases');
    const baseWeight = quantInfo(layer.baseWeight(), what, 'base_weight');
    for (const [name, q] of [['gains', gains], ['biases', biases], ['base_weight', baseWeight]] as const) {
      if (q.rows !== outFeatures || q.cols !== inFeatures) fail(what, `${name} is ${q.rows}x${q.cols}, the layer is ${outFeatures}x${inFeatures}`);
    }
    const r2 = layer.r2();
    return {
      schemaVersion,
      inFeatures,
      outFeatures,
      basis: BasisKind[grid.kind()] ?? `unknown(${grid.kind()})`,
      gridSize,
      splineOrder,
      knotCount,
      knotsShared,
      codebookKey: key,
      codebookSize,
      codebookDim,
      indexBits,
      indicesBytes,
      gains,
      biases,
      baseWeight,
      r2: Number.isNaN(r2) ? null : r2,
      bytes: bytes.length,
    };
  });
}

/** Parses and validates a shared codebook buffer. */
export function readCodebook(bytes: Uint8Array, what = 'LUTHAM codebook'): CodebookInfo {
  checkIdentifier(bytes, CODEBOOK_IDENTIFIER, what, 'LUTHAM codebook');
  return guard(what, () => {
    const cb = Codebook.getRootAsCodebook(new CheckedByteBuffer(bytes));
    const size = cb.size();
    const dim = cb.dim();
    const values = quantInfo(cb.values(), what, 'values');
    if (values.rows !== size || values.cols !== dim) fail(what, `values are ${values.rows}x${values.cols}, header says ${size}x${dim}`);
    return { size, dim, values, bytes: bytes.length };
  });
}

/** True when `bytes` start like a LUTHAM codebook buffer. */
export function isCodebook(bytes: Uint8Array): boolean {
  return fileIdentifier(bytes) === CODEBOOK_IDENTIFIER;
}

/** Unpacks `count` LSB-first fields of `bits` bits (1..32). */
export function unpackBits(data: Uint8Array, bits: number, count: number, signed: boolean): Int32Array | Uint32Array {
  const out = signed ? new Int32Array(count) : new Uint32Array(count);
  let bitPos = 0;
  for (let i = 0; i < count; i++) {
    let v = 0;
    for (let b = 0; b < bits; b++, bitPos++) {
      if ((data[bitPos >>> 3] >>> (bitPos & 7)) & 1) v += 2 ** b;
    }
    if (signed && v >= 2 ** (bits - 1)) v -= 2 ** bits;
    out[i] = v;
  }
  return out;
}

function decodeQuant(t: QuantTensor): Float32Array {
  const rows = t.rows();
  const cols = t.cols();
  const out = new Float32Array(rows * cols);
  if (t.bits() === FLOAT_BITS) {
    for (let i = 0; i < out.length; i++) out[i] = t.f32(i)!;
    return out;
  }
  const packed = new Uint8Array(t.packedLength());
  for (let i = 0; i < packed.length; i++) packed[i] = t.packed(i)!;
  const q = unpackBits(packed, t.bits(), rows * cols, true);
  for (let r = 0; r < rows; r++) {
    const s = t.scales(r)!;
    for (let c = 0; c < cols; c++) out[r * cols + c] = q[r * cols + c] * s;
  }
  return out;
}

export interface DecodedLayer {
  info: LayerInfo;
  /** out x in codeword indices, row-major. */
  indices: Uint32Array;
  gains: Float32Array;
  biases: Float32Array;
  baseWeight: Float32Array;
  /** in x (grid + 2*order + 1) knots, row-major (a shared row is repeated for every input). */
  knots: Float32Array;
}

/** Validates and fully decodes a payload (values dequantized to float32). */
export function decodePayload(bytes: Uint8Array, what = 'LUTHAM payload'): DecodedLayer {
  const info = readPayload(bytes, what);
  return guard(what, () => {
    const layer = Payload.getRootAsPayload(new CheckedByteBuffer(bytes)).layer()!;
    const grid = layer.grid()!;
    const raw = new Uint8Array(info.indicesBytes);
    for (let i = 0; i < raw.length; i++) raw[i] = layer.indices(i)!;
    const stored = info.knotCount;
    const knots = new Float32Array(info.knotsShared ? stored * info.inFeatures : stored);
    for (let i = 0; i < knots.length; i++) knots[i] = grid.knots(i % stored)!;
    return {
      info,
      indices: unpackBits(raw, info.indexBits, info.inFeatures * info.outFeatures, false) as Uint32Array,
      gains: decodeQuant(layer.gains()!),
      biases: decodeQuant(layer.biases()!),
      baseWeight: decodeQuant(layer.baseWeight()!),
      knots,
    };
  });
}

/** Validates and decodes a codebook: size x dim float32 values, row-major. */
export function decodeCodebook(bytes: Uint8Array, what = 'LUTHAM codebook'): { info: CodebookInfo; values: Float32Array } {
  const info = readCodebook(bytes, what);
  return guard(what, () => ({ info, values: decodeQuant(Codebook.getRootAsCodebook(new CheckedByteBuffer(bytes)).values()!) }));
}
