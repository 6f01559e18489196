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
import { EdgeValues } from '../generated/lutham/payload/edge-values.js';
import { CheckedByteBuffer, FlatbufferRangeError, fileIdentifier, showIdentifier } from '../pte/checked-buffer.js';

export const PAYLOAD_IDENTIFIER = 'LTHM';
export const CODEBOOK_IDENTIFIER = 'LTCB';
/** Payload schema versions this reader understands. */
export const KNOWN_SCHEMA_VERSIONS = [2];
export const FLOAT_BITS = 32;
/** Outputs per edge panel (schema/lutham.fbs EdgePanels.width). */
export const PANEL_WIDTH = 16;

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

/** How one per-edge value (gain, bias, base weight) is stored in the edge panels. */
export interface EdgeValuesInfo {
  /** 32 = float32 values; 2..8 = signed ints with one scale per (panel-padded) output. */
  bits: number;
  /** Number of per-output scales (bits < 32): outputs rounded up to whole panels. */
  scaleCount: number;
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
  /** ceil(log2 K); indices are stored as uint8 (<= 8 bits) or uint16. */
  indexBits: number;
  gains: EdgeValuesInfo;
  biases: EdgeValuesInfo;
  baseWeight: EdgeValuesInfo;
  /** Output panels of PANEL_WIDTH, and the bytes of one (panel, input) record and of all. */
  panels: number;
  recordBytes: number;
  panelBytes: number;
  /** CRC-32 of the layer's data as stored (checked by decodePayload and the runtime). */
  checksum: number;
  /** Gaussian RBF width h (null for B-splines). */
  rbfDenominator: number | null;
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
    const rbf = grid.kind() === BasisKind.GaussianRBF;
    const knotCount = grid.knotsLength();
    const row = nKnots(rbf, gridSize, splineOrder);
    const knotsShared = knotCount === row && inFeatures !== 1;
    if (knotCount !== inFeatures * row && knotCount !== row) {
      fail(what, `grid has ${knotCount} knots, ${inFeatures} inputs at grid ${gridSize} order ${splineOrder} need ${inFeatures * row} (or ${row} shared)`);
    }
    const indexBits = layer.indexBits();
    if (indexBits < 1 || indexBits > 16) fail(what, `index width ${indexBits} bits is out of range 1..16`);
    const codebookSize = layer.codebookSize();
    const codebookDim = layer.codebookDim();
    if (codebookSize < 1 || codebookSize > 2 ** indexBits) fail(what, `codebook size ${codebookSize} does not fit ${indexBits}-bit indices`);
    if (codebookDim !== gridSize + splineOrder) fail(what, `codebook dim ${codebookDim} != grid ${gridSize} + order ${splineOrder}`);
    const key = layer.codebookKey();
    if (!key) fail(what, 'has no codebook key');
    const panels = Math.ceil(outFeatures / PANEL_WIDTH);
    const gains = edgeValuesInfo(layer.gain(), panels, what, 'gain');
    const biases = edgeValuesInfo(layer.bias(), panels, what, 'bias');
    const baseWeight = edgeValuesInfo(layer.base(), panels, what, 'base');
    const floats = gains.bits === FLOAT_BITS;
    if ((biases.bits === FLOAT_BITS) !== floats || (baseWeight.bits === FLOAT_BITS) !== floats) {
      fail(what, 'gain, bias and base must be all float32 or all integers');
    }
    const edgePanels = layer.panels();
    if (!edgePanels) fail(what, 'has no edge panels');
    if (edgePanels.width() !== PANEL_WIDTH) fail(what, `panel width ${edgePanels.width()}, this reader knows ${PANEL_WIDTH}`);
    const recordBytes = recordLength(indexBits, floats, gains.bits + biases.bits + baseWeight.bits);
    if (edgePanels.recordBytes() !== recordBytes) fail(what, `panel records are ${edgePanels.recordBytes()} bytes, the layer's widths make them ${recordBytes}`);
    const panelBytes = edgePanels.dataLength();
    if (panelBytes !== panels * inFeatures * recordBytes) {
      fail(what, `panel data has ${panelBytes} bytes, ${panels} panels x ${inFeatures} inputs x ${recordBytes} need ${panels * inFeatures * recordBytes}`);
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
      gains,
      biases,
      baseWeight,
      panels,
      recordBytes,
      panelBytes,
      checksum: layer.checksum(),
      rbfDenominator: rbf ? grid.rbfDenominator() : null,
      r2: Number.isNaN(r2) ? null : r2,
      bytes: bytes.length,
    };
  });
}

function nKnots(rbf: boolean, gridSize: number, splineOrder: number): number {
  return rbf ? gridSize : gridSize + 2 * splineOrder + 1;
}

function recordLength(indexBits: number, floats: boolean, valueBits: number): number {
  const indexBytes = indexBits <= 8 ? 1 : 2;
  return PANEL_WIDTH * (indexBytes + (floats ? 12 : valueBits <= 16 ? 2 : 4));
}

function edgeValuesInfo(v: EdgeValues | null, panels: number, what: string, name: string): EdgeValuesInfo {
  if (!v) fail(what, `${name} is missing`);
  const bits = v.bits();
  const scaleCount = v.scalesLength();
  if (bits === FLOAT_BITS) {
    if (scaleCount !== 0) fail(what, `${name} is float32 but carries ${scaleCount} scales`);
  } else if (bits >= 2 && bits <= 8) {
    if (scaleCount !== panels * PANEL_WIDTH) fail(what, `${name} has ${scaleCount} scales for ${panels * PANEL_WIDTH} panel-padded outputs`);
  } else {
    fail(what, `${name} has unsupported bit width ${bits}`);
  }
  return { bits, scaleCount };
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
  /** in x n_knots knots (RBF: centers), row-major (a shared row is repeated for every input). */
  knots: Float32Array;
}

/** CRC-32 as zlib computes it: the payload checksum. */
export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[b] = c >>> 0;
  }
  return t;
})();

function floatBytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

/** Validates (checksum included) and fully decodes a payload (values dequantized to float32). */
export function decodePayload(bytes: Uint8Array, what = 'LUTHAM payload'): DecodedLayer {
  const info = readPayload(bytes, what);
  return guard(what, () => {
    const layer = Payload.getRootAsPayload(new CheckedByteBuffer(bytes)).layer()!;
    const grid = layer.grid()!;
    const knotValues = Array.from({ length: info.knotCount }, (_, i) => grid.knots(i)!);
    const data = Uint8Array.from(layer.panels()!.dataArray()!);
    const fields = [layer.gain()!, layer.bias()!, layer.base()!];
    const scales = fields.map((f) => Array.from({ length: f.scalesLength() }, (_, i) => f.scales(i)!));
    let crc = crc32(floatBytes(knotValues));
    crc = crc32(data, crc);
    for (const s of scales) crc = crc32(floatBytes(s), crc);
    if (crc !== info.checksum) fail(what, `checksum mismatch (stored ${info.checksum.toString(16)}, computed ${crc.toString(16)}): the data is corrupt`);
    const { inFeatures: inF, outFeatures: outF, recordBytes } = info;
    const indexBytes = info.indexBits <= 8 ? 1 : 2;
    const floats = info.gains.bits === FLOAT_BITS;
    const bits = [info.gains.bits, info.biases.bits, info.baseWeight.bits];
    const wordBytes = bits[0] + bits[1] + bits[2] <= 16 ? 2 : 4;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const indices = new Uint32Array(outF * inF);
    const values = [new Float32Array(outF * inF), new Float32Array(outF * inF), new Float32Array(outF * inF)];
    for (let o = 0; o < outF; o++) {
      const p = Math.floor(o / PANEL_WIDTH), lane = o % PANEL_WIDTH;
      for (let i = 0; i < inF; i++) {
        const rec = (p * inF + i) * recordBytes;
        const e = o * inF + i;
        indices[e] = indexBytes === 1 ? view.getUint8(rec + lane) : view.getUint16(rec + 2 * lane, true);
        const v = rec + PANEL_WIDTH * indexBytes;
        if (floats) {
          for (let f = 0; f < 3; f++) values[f][e] = view.getFloat32(v + (f * PANEL_WIDTH + lane) * 4, true);
        } else {
          const word = wordBytes === 2 ? view.getUint16(v + 2 * lane, true) : view.getUint32(v + 4 * lane, true);
          let shift = 0;
          for (let f = 0; f < 3; f++) {
            let q = Math.floor(word / 2 ** shift) % 2 ** bits[f];
            if (q >= 2 ** (bits[f] - 1)) q -= 2 ** bits[f];
            values[f][e] = Math.fround(q * scales[f][o]);
            shift += bits[f];
          }
        }
      }
    }
    const stored = info.knotCount;
    const knots = new Float32Array(info.knotsShared ? stored * info.inFeatures : stored);
    for (let i = 0; i < knots.length; i++) knots[i] = knotValues[i % stored];
    return { info, indices, gains: values[0], biases: values[1], baseWeight: values[2], knots };
  });
}

/** Validates and decodes a codebook: size x dim float32 values, row-major. */
export function decodeCodebook(bytes: Uint8Array, what = 'LUTHAM codebook'): { info: CodebookInfo; values: Float32Array } {
  const info = readCodebook(bytes, what);
  return guard(what, () => ({ info, values: decodeQuant(Codebook.getRootAsCodebook(new CheckedByteBuffer(bytes)).values()!) }));
}
