// The full decode of LUTHAM's buffers and the checks `lutham inspect --verify` adds to the
// readers' (index.ts): the payload CRC-32, every codeword index (padding lanes included) and a
// codebook's bytes against the SHA-256 in its key, the checks LuthamBackend makes at init.
import { createHash } from 'node:crypto';
import { Codebook } from '../generated/lutham/payload/codebook.js';
import { Payload } from '../generated/lutham/payload/payload.js';
import type { QuantTensor } from '../generated/lutham/payload/quant-tensor.js';
import { CheckedByteBuffer } from '../pte/checked-buffer.js';
import { CODEBOOK_KEY_PREFIX, FLOAT_BITS, INT8_GROUP, PANEL_WIDTH, indexBytes, valueWordBytes } from './format.js';
import { fail, guard, readCodebook, readPayload, type CodebookInfo, type LayerInfo } from './index.js';

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

/**
 * The CRC-32 of a payload's data as stored (KanLayer.checksum's rule: grid.knots, panels.data,
 * gain.scales, bias.scales, base.scales), whatever its checksum field says. Call it on a buffer
 * readPayload accepted.
 */
export function storedDataChecksum(bytes: Uint8Array): number {
  const layer = Payload.getRootAsPayload(new CheckedByteBuffer(bytes)).layer()!;
  const grid = layer.grid()!;
  let crc = crc32(floatBytes(Array.from({ length: grid.knotsLength() }, (_, i) => grid.knots(i)!)));
  crc = crc32(layer.panels()!.dataArray()!, crc);
  for (const f of [layer.gain()!, layer.bias()!, layer.base()!]) {
    crc = crc32(floatBytes(Array.from({ length: f.scalesLength() }, (_, i) => f.scales(i)!)), crc);
  }
  // The compute byte, when it is not float (float payloads keep the checksum they always had).
  if (layer.compute() !== 0) crc = crc32(Uint8Array.of(layer.compute()), crc);
  return crc;
}

/**
 * Validates and fully decodes a payload (values dequantized to float32), checking the CRC-32,
 * that every index, padding lanes included, is below the codebook size, and (int8 mode) that the
 * inputs padding the last group record hold 0 words.
 */
export function decodePayload(bytes: Uint8Array, what = 'LUTHAM payload'): DecodedLayer {
  const info = readPayload(bytes, what);
  return guard(what, () => {
    const layer = Payload.getRootAsPayload(new CheckedByteBuffer(bytes)).layer()!;
    const grid = layer.grid()!;
    const knotValues = Array.from({ length: info.knotCount }, (_, i) => grid.knots(i)!);
    const data = Uint8Array.from(layer.panels()!.dataArray()!);
    const fields = [layer.gain()!, layer.bias()!, layer.base()!];
    const scales = fields.map((f) => Array.from({ length: f.scalesLength() }, (_, i) => f.scales(i)!));
    const crc = storedDataChecksum(bytes);
    if (crc !== info.checksum) fail(what, `checksum mismatch (stored ${info.checksum.toString(16)}, computed ${crc.toString(16)}): the data is corrupt`);
    const { inFeatures: inF, outFeatures: outF, recordBytes } = info;
    const idxBytes = indexBytes(info.indexBits);
    const floats = info.gains.bits === FLOAT_BITS;
    const bits = [info.gains.bits, info.biases.bits, info.baseWeight.bits];
    const wordBytes = valueWordBytes(bits[0] + bits[1] + bits[2]);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const indices = new Uint32Array(outF * inF);
    const values = [new Float32Array(outF * inF), new Float32Array(outF * inF), new Float32Array(outF * inF)];
    const paddedOut = info.panels * PANEL_WIDTH;
    for (let o = 0; o < paddedOut; o++) {
      const p = Math.floor(o / PANEL_WIDTH), lane = o % PANEL_WIDTH;
      for (let i = 0; i < inF; i++) {
        // int8 mode (group 4): record (p, i / 4), byte 4 lane + i % 4 of each plane.
        const grouped = info.group === INT8_GROUP;
        const plane = PANEL_WIDTH * INT8_GROUP;
        const rec = grouped ? (p * Math.ceil(inF / INT8_GROUP) + Math.floor(i / INT8_GROUP)) * recordBytes + INT8_GROUP * lane + (i % INT8_GROUP)
          : (p * inF + i) * recordBytes;
        const index = grouped ? view.getUint8(rec) : idxBytes === 1 ? view.getUint8(rec + lane) : view.getUint16(rec + 2 * lane, true);
        // Every lane, padding included, as LuthamBackend checks at init.
        if (index >= info.codebookSize) fail(what, `index ${index} of edge (output ${o}, input ${i}) is >= codebook size ${info.codebookSize}`);
        if (o >= outF) continue;
        const e = o * inF + i;
        indices[e] = index;
        const v = rec + PANEL_WIDTH * idxBytes;
        if (floats) {
          for (let f = 0; f < 3; f++) values[f][e] = view.getFloat32(v + (f * PANEL_WIDTH + lane) * 4, true);
        } else {
          let word = 0;
          if (grouped) for (let b = 0; b < wordBytes; b++) word += view.getUint8(rec + plane * (1 + b)) * 2 ** (8 * b);
          else word = wordBytes === 2 ? view.getUint16(v + 2 * lane, true) : view.getUint32(v + 4 * lane, true);
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
    // The inputs that pad the last group record must hold 0 words, as LuthamBackend checks at
    // init (its vector loops add those edges in; the portable ones skip them).
    if (info.group === INT8_GROUP && inF % INT8_GROUP !== 0 && !floats) {
      const groups = Math.ceil(inF / INT8_GROUP), plane = PANEL_WIDTH * INT8_GROUP;
      for (let p = 0; p < info.panels; p++) {
        const rec = (p * groups + groups - 1) * recordBytes;
        for (let b = 0; b < wordBytes; b++) {
          for (let e = 0; e < plane; e++) {
            if (e % INT8_GROUP < inF % INT8_GROUP || view.getUint8(rec + plane * (1 + b) + e) === 0) continue;
            fail(what, `edge (output ${p * PANEL_WIDTH + Math.floor(e / INT8_GROUP)}, input ${(groups - 1) * INT8_GROUP + (e % INT8_GROUP)}) ` +
              `pads the inputs (in_features ${inF}) but its value word is not 0`);
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

/**
 * Checks a codebook's bytes against the SHA-256 its key names (what LuthamBackend does before it
 * shares one copy); a key without that form cannot be checked and is refused, as the runtime does.
 */
export function verifyCodebookKey(bytes: Uint8Array, key: string, what = `LUTHAM codebook ${key}`): void {
  if (!key.startsWith(CODEBOOK_KEY_PREFIX) || !/^[0-9a-f]{64}$/.test(key.slice(CODEBOOK_KEY_PREFIX.length))) {
    fail(what, `key is not ${CODEBOOK_KEY_PREFIX}<64 hex digits>, so its bytes cannot be checked`);
  }
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== key.slice(CODEBOOK_KEY_PREFIX.length)) fail(what, `bytes do not match the key's sha256 (they hash to ${actual.slice(0, 12)}...)`);
}
