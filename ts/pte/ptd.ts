// Reads a .ptd file (ExecuTorch's flat_tensor format: what `lutham export --external-data`
// writes as lutham.ptd) with the generated flat_tensor code.
//
// Layout (ExecuTorch `extension/flat_tensor/serialize/serialize.py`):
//   [0..4)   root offset of the FlatTensor flatbuffer
//   [4..8)   file identifier "FT01"
//   [8..48)  header "FH01": u32 length, u64 flatbuffer_offset, u64 flatbuffer_size,
//            u64 segment_base_offset, u64 segment_data_size (little-endian)
//   [segment_base_offset..+data_size) segments; DataSegment.offset is relative to the base
import { readFile, stat } from 'node:fs/promises';

import { LuthamError } from '../errors.js';
import { FlatTensor } from '../generated/flat-tensor-flatbuffer/flat-tensor.js';
import { isCodebook, readCodebook, type CodebookInfo } from '../payload/index.js';
import { decodeCodebook, verifyCodebookKey } from '../payload/verify.js';
import { CheckedByteBuffer, fileIdentifier, showIdentifier } from './checked-buffer.js';
import { guardParse } from './file.js';

export const PTD_IDENTIFIER = 'FT01';
export const PTD_HEADER_MAGIC = 'FH01';
/** magic, u32 length, four u64. */
const PTD_HEADER_MIN_LENGTH = 40;
/** A .ptd holds codebooks (a few MB at K = 65,536): refuse to read a huge file whole. */
const MAX_PTD_BYTES = 1 << 30;

export interface PtdEntry {
  key: string;
  segmentIndex: number;
  /** Absolute offset in the file. */
  offset: number;
  bytes: number;
  codebook?: CodebookInfo;
}

export interface PtdReport {
  path: string;
  fileBytes: number;
  identifier: string;
  version: number;
  entries: PtdEntry[];
  /** With `verify`: codebooks decoded and checked against their keys' SHA-256. */
  verified?: { codebooks: number; failures: string[] };
}

/** Whether the first bytes are a .ptd's (identifier FT01). */
export function isPtd(head: Uint8Array): boolean {
  return fileIdentifier(head) === PTD_IDENTIFIER;
}

/** The named data of the .ptd at `path`; LuthamError with one line on a bad file. */
export async function readPtd(path: string, options: { verify?: boolean } = {}): Promise<PtdReport> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (e) {
    throw new LuthamError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (size > MAX_PTD_BYTES) throw new LuthamError(`${path}: ${size} bytes is too large for a .ptd of codebooks`);
  const bytes = new Uint8Array(await readFile(path));
  const id = fileIdentifier(bytes);
  if (id !== PTD_IDENTIFIER) throw new LuthamError(`${path} is not a .ptd file (identifier ${showIdentifier(id)}, expected "${PTD_IDENTIFIER}")`);
  const what = `${path}`;
  return guardParse(what, () => {
    if (bytes.length < 8 + PTD_HEADER_MIN_LENGTH) throw new LuthamError(`${what} is corrupt: ${bytes.length} bytes is too short for its header`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const magic = String.fromCharCode(...bytes.subarray(8, 12));
    if (magic !== PTD_HEADER_MAGIC) throw new LuthamError(`${what} is corrupt: header magic ${showIdentifier(magic)}, expected "${PTD_HEADER_MAGIC}"`);
    const u64 = (at: number, name: string) => {
      const v = view.getBigUint64(at, true);
      if (v > BigInt(bytes.length)) throw new LuthamError(`${what} is corrupt: ${name} ${v} is beyond the ${bytes.length}-byte file`);
      return Number(v);
    };
    const flatbufferEnd = u64(16, 'flatbuffer_offset') + u64(24, 'flatbuffer_size');
    const base = u64(32, 'segment_base_offset');
    const dataSize = u64(40, 'segment_data_size');
    if (base + dataSize > bytes.length) throw new LuthamError(`${what} is corrupt: segment data ends at ${base + dataSize}, after the ${bytes.length}-byte file`);
    if (flatbufferEnd > bytes.length) throw new LuthamError(`${what} is corrupt: its flatbuffer ends at ${flatbufferEnd}, after the ${bytes.length}-byte file`);
    const root = FlatTensor.getRootAsFlatTensor(new CheckedByteBuffer(bytes.subarray(0, flatbufferEnd)));
    const segments: { offset: number; size: number }[] = [];
    for (let i = 0; i < root.segmentsLength(); i++) {
      const s = root.segments(i)!;
      const offset = Number(s.offset()), segSize = Number(s.size());
      if (offset + segSize > dataSize) throw new LuthamError(`${what} is corrupt: segment ${i} (${segSize} bytes at ${offset}) is outside the segment data`);
      segments.push({ offset: base + offset, size: segSize });
    }
    const entries: PtdEntry[] = [];
    const verified = options.verify ? { codebooks: 0, failures: [] as string[] } : undefined;
    for (let i = 0; i < root.namedDataLength(); i++) {
      const nd = root.namedData(i)!;
      const key = nd.key() ?? '';
      const index = nd.segmentIndex();
      if (index >= segments.length) throw new LuthamError(`${what} is corrupt: named data ${key} refers to missing segment ${index}`);
      const seg = segments[index];
      const entry: PtdEntry = { key, segmentIndex: index, offset: seg.offset, bytes: seg.size };
      const blob = bytes.subarray(seg.offset, seg.offset + seg.size);
      if (isCodebook(blob)) {
        const cbWhat = `${path}: codebook ${key}`;
        entry.codebook = readCodebook(blob, cbWhat);
        if (verified) {
          for (const check of [() => decodeCodebook(blob, cbWhat), () => verifyCodebookKey(blob, key, cbWhat)]) {
            try {
              check();
            } catch (e) {
              if (!(e instanceof LuthamError)) throw e;
              verified.failures.push(e.message);
            }
          }
          verified.codebooks++;
        }
      }
      entries.push(entry);
    }
    return { path, fileBytes: bytes.length, identifier: PTD_IDENTIFIER, version: root.version(), entries, ...(verified ? { verified } : {}) };
  });
}
