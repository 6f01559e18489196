// The LUTHAM payload format's numbers, once for TypeScript (schema/lutham.fbs states them in its
// comments and defaults; test/ts/payload.test.ts checks these against the schema text). Every
// TypeScript reader (index.ts: the checks; verify.ts: the full decode) takes them from here.

export const PAYLOAD_IDENTIFIER = 'LTHM';
export const CODEBOOK_IDENTIFIER = 'LTCB';
/** The payload schema version of float-mode payloads (Payload.schema_version). */
export const SCHEMA_VERSION = 2;
/** The version of int8-mode payloads (KanLayer.compute Int8, EdgePanels.group 4): version 3 added them. */
export const SCHEMA_VERSION_INT8 = 3;
/** Payload schema versions the readers understand. */
export const KNOWN_SCHEMA_VERSIONS = [SCHEMA_VERSION, SCHEMA_VERSION_INT8];
/** Inputs per EdgePanels record in the int8 mode's layout (byte planes in [lane][input] order). */
export const INT8_GROUP = 4;
/** KanLayer.compute's names, as `lutham export --compute` takes them. */
export const COMPUTE_NAMES = ['float', 'int8'] as const;
/** QuantTensor/EdgeValues `bits` of float32 storage; integers are 2..8 bits. */
export const FLOAT_BITS = 32;
export const MIN_INT_BITS = 2;
export const MAX_INT_BITS = 8;
/** Outputs per edge panel (EdgePanels.width). */
export const PANEL_WIDTH = 16;
/** Codeword indices are stored as uint8 up to this many bits, uint16 above (index_bits <= 16). */
export const MAX_INDEX_BITS = 16;
/** The most codewords a codebook can have: 2^MAX_INDEX_BITS. */
export const MAX_CODEBOOK_SIZE = 2 ** MAX_INDEX_BITS;
/** The key under which a codebook's named data is stored: this prefix + the SHA-256 of its bytes. */
export const CODEBOOK_KEY_PREFIX = 'lutham/codebook/sha256-';

/** Bytes of one stored codeword index. */
export function indexBytes(indexBits: number): 1 | 2 {
  return indexBits <= 8 ? 1 : 2;
}

/** Bytes of one packed gain|bias|base word of integer storage. */
export function valueWordBytes(valueBits: number): 2 | 4 {
  return valueBits <= 16 ? 2 : 4;
}

/**
 * Bytes of one (panel, input) record: PANEL_WIDTH indices, then PANEL_WIDTH packed words
 * (integers) or 3 x PANEL_WIDTH float32 values. `valueBits` = gain + bias + base bits.
 */
export function recordBytes(indexBits: number, floats: boolean, valueBits: number): number {
  return PANEL_WIDTH * (indexBytes(indexBits) + (floats ? 12 : valueWordBytes(valueBits)));
}

/**
 * Bytes of one group record of the int8 mode (EdgePanels.group 4): PANEL_WIDTH x INT8_GROUP
 * indices, then that many bytes for each byte of the value words.
 */
export function int8RecordBytes(valueBits: number): number {
  return PANEL_WIDTH * INT8_GROUP * (1 + valueWordBytes(valueBits));
}

/** Output panels of a layer with `outFeatures` outputs (the last one padded). */
export function panelCount(outFeatures: number): number {
  return Math.ceil(outFeatures / PANEL_WIDTH);
}

/** Knots (RBF: centers) per input row. */
export function knotsPerRow(rbf: boolean, gridSize: number, splineOrder: number): number {
  return rbf ? gridSize : gridSize + 2 * splineOrder + 1;
}

/** Bytes of `count` integers of `bits` bits packed LSB-first. */
export function packedLength(count: number, bits: number): number {
  return Math.ceil((count * bits) / 8);
}
