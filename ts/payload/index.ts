// Readers for LUTHAM's own buffers on top of the generated code (schema/lutham.fbs):
// a LuthamBackend delegate payload (`Payload`, identifier "LTHM") and a shared codebook
// (`Codebook`, identifier "LTCB", stored in the .pte's named data).
//
// `readPayload`/`readCodebook` validate the buffer (identifier, every read in range,
// sizes consistent with the schema's packing rules) and return plain summaries; verify.ts
// decodes every value and checks the checksum (`lutham inspect --verify`).
import { LuthamError } from '../errors.js';
import { Codebook } from '../generated/lutham/payload/codebook.js';
import { KanLayer } from '../generated/lutham/payload/kan-layer.js';
import { Payload } from '../generated/lutham/payload/payload.js';
import { QuantTensor } from '../generated/lutham/payload/quant-tensor.js';
import { BasisKind } from '../generated/lutham/payload/basis-kind.js';
import { EdgeValues } from '../generated/lutham/payload/edge-values.js';
import { CheckedByteBuffer, FlatbufferRangeError, fileIdentifier, showIdentifier } from '../pte/checked-buffer.js';

import {
  CODEBOOK_IDENTIFIER, COMPUTE_NAMES, FLOAT_BITS, INT8_GROUP, KNOWN_SCHEMA_VERSIONS, MAX_INDEX_BITS, MAX_INT_BITS, MIN_INT_BITS,
  PANEL_WIDTH, PAYLOAD_IDENTIFIER, SCHEMA_VERSION_INT8, int8RecordBytes, knotsPerRow, packedLength, panelCount, recordBytes,
} from './format.js';

export * from './format.js';

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
  /** How LuthamBackend computes the layer (KanLayer.compute): float, or the int8 mode. */
  compute: (typeof COMPUTE_NAMES)[number];
  /** Output panels of PANEL_WIDTH, and the bytes of one record (one input, or INT8_GROUP in the int8 mode) and of all. */
  panels: number;
  /** Inputs per record (EdgePanels.group): 1, or INT8_GROUP in the int8 mode. */
  group: number;
  recordBytes: number;
  panelBytes: number;
  /** CRC-32 of the layer's data as stored (checked by verify.ts and the runtime). */
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

export function fail(what: string, msg: string): never {
  throw new LuthamError(`${what}: ${msg}`);
}

export function guard<T>(what: string, fn: () => T): T {
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
  } else if (bits >= MIN_INT_BITS && bits <= MAX_INT_BITS) {
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
    const row = knotsPerRow(rbf, gridSize, splineOrder);
    const knotsShared = knotCount === row && inFeatures !== 1;
    if (knotCount !== inFeatures * row && knotCount !== row) {
      fail(what, `grid has ${knotCount} knots, ${inFeatures} inputs at grid ${gridSize} order ${splineOrder} need ${inFeatures * row} (or ${row} shared)`);
    }
    const indexBits = layer.indexBits();
    if (indexBits < 1 || indexBits > MAX_INDEX_BITS) fail(what, `index width ${indexBits} bits is out of range 1..${MAX_INDEX_BITS}`);
    const codebookSize = layer.codebookSize();
    const codebookDim = layer.codebookDim();
    if (codebookSize < 1 || codebookSize > 2 ** indexBits) fail(what, `codebook size ${codebookSize} does not fit ${indexBits}-bit indices`);
    if (codebookDim !== gridSize + splineOrder) fail(what, `codebook dim ${codebookDim} != grid ${gridSize} + order ${splineOrder}`);
    const key = layer.codebookKey();
    if (!key) fail(what, 'has no codebook key');
    const panels = panelCount(outFeatures);
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
    const computeMode = layer.compute();
    if (computeMode >= COMPUTE_NAMES.length) fail(what, `unknown compute mode ${computeMode}`);
    const compute = COMPUTE_NAMES[computeMode];
    const int8 = compute === 'int8';
    const group = edgePanels.group();
    if (group !== (int8 ? INT8_GROUP : 1)) fail(what, `a ${compute} layer's panels must have group ${int8 ? INT8_GROUP : 1}, got ${group}`);
    if (int8 && schemaVersion < SCHEMA_VERSION_INT8) fail(what, `says schema version ${schemaVersion} but uses version ${SCHEMA_VERSION_INT8}'s int8 mode`);
    if (int8 && (floats || indexBits > 8)) fail(what, 'an int8-mode layer needs integer values and one-byte indices');
    const valueBits = gains.bits + biases.bits + baseWeight.bits;
    const recordSize = int8 ? int8RecordBytes(valueBits) : recordBytes(indexBits, floats, valueBits);
    if (edgePanels.recordBytes() !== recordSize) fail(what, `panel records are ${edgePanels.recordBytes()} bytes, the layer's widths make them ${recordSize}`);
    const panelBytes = edgePanels.dataLength();
    const records = int8 ? Math.ceil(inFeatures / INT8_GROUP) : inFeatures;
    if (panelBytes !== panels * records * recordSize) {
      fail(what, `panel data has ${panelBytes} bytes, ${panels} panels x ${records} records x ${recordSize} need ${panels * records * recordSize}`);
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
      compute,
      panels,
      group,
      recordBytes: recordSize,
      panelBytes,
      checksum: layer.checksum(),
      rbfDenominator: rbf ? grid.rbfDenominator() : null,
      r2: Number.isNaN(r2) ? null : r2,
      bytes: bytes.length,
    };
  });
}

function edgeValuesInfo(v: EdgeValues | null, panels: number, what: string, name: string): EdgeValuesInfo {
  if (!v) fail(what, `${name} is missing`);
  const bits = v.bits();
  const scaleCount = v.scalesLength();
  if (bits === FLOAT_BITS) {
    if (scaleCount !== 0) fail(what, `${name} is float32 but carries ${scaleCount} scales`);
  } else if (bits >= MIN_INT_BITS && bits <= MAX_INT_BITS) {
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
