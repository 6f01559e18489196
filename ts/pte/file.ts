// Opens a .pte through a file handle: the header and the flatbuffer program are read
// into memory, segments only on demand (and only as much of them as asked for), so a
// 3 GB file costs a few MB.
//
// Layout (ExecuTorch `exir/_serialize/_program.py`):
//   [0..4)   root offset of the Program flatbuffer
//   [4..8)   file identifier "ET12"
//   [8..)    optional extended header "eh00": u32 length, u64 program_size,
//            u64 segment_base_offset, u64 segment_data_size (little-endian)
//   [0..program_size)                 the Program flatbuffer
//   [segment_base_offset..+data_size) segments; DataSegment.offset is relative to the base
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

import { LuthamError } from '../errors.js';
import { DataSegment } from '../generated/executorch-flatbuffer/data-segment.js';
import { Program } from '../generated/executorch-flatbuffer/program.js';
import { CheckedByteBuffer, FlatbufferRangeError, fileIdentifier, showIdentifier } from './checked-buffer.js';

export const PTE_IDENTIFIER = 'ET12';
export const EXTENDED_HEADER_MAGIC = 'eh00';
/** Smallest extended header: magic, u32 length, three u64. */
export const EXTENDED_HEADER_MIN_LENGTH = 32;
/** A .pte without segments keeps everything in the flatbuffer; refuse to load a huge one whole. */
export const MAX_PROGRAM_BYTES = 1 << 30;

export interface ExtendedHeader {
  length: number;
  programSize: number;
  segmentBaseOffset: number;
  segmentDataSize: number;
}

export interface SegmentRange {
  index: number;
  /** Absolute offset in the file. */
  offset: number;
  size: number;
}

function u64(view: DataView, at: number, what: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new LuthamError(`${what} ${v} in the extended header is not a plausible size`);
  return Number(v);
}

/** Runs `fn`, turning flatbuffer range errors and stray exceptions into a LuthamError. */
export function guardParse<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof LuthamError) throw e;
    const msg = e instanceof FlatbufferRangeError || e instanceof RangeError || e instanceof TypeError ? (e as Error).message : String(e);
    throw new LuthamError(`${what} is corrupt: ${msg}`);
  }
}

export class PteFile {
  private constructor(
    readonly path: string,
    private handle: FileHandle | null,
    readonly fileSize: number,
    readonly header: ExtendedHeader | null,
    /** The flatbuffer part only (bytes [0, programSize)). */
    readonly programBytes: Uint8Array,
    readonly program: Program,
  ) {}

  /** Opens and validates `path`; throws LuthamError on anything that is not a readable .pte. */
  static async open(path: string): Promise<PteFile> {
    let handle: FileHandle;
    try {
      // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
      handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : err.code ?? err.message;
      throw new LuthamError(`cannot open ${path}: ${why}`);
    }
    try {
      const stat = await handle.stat();
      if (stat.isDirectory()) throw new LuthamError(`cannot read ${path}: is a directory`);
      if (!stat.isFile()) throw new LuthamError(`cannot read ${path}: not a regular file`);
      const fileSize = stat.size;
      const head = await readExact(handle, 0, Math.min(fileSize, 64));
      if (fileSize < 8) throw new LuthamError(`${path} is not a .pte file (only ${fileSize} bytes)`);
      const id = fileIdentifier(head);
      if (id !== PTE_IDENTIFIER) {
        if (/^ET\d\d$/.test(id)) throw new LuthamError(`${path}: unsupported .pte version ${id} (this reader knows ${PTE_IDENTIFIER})`);
        throw new LuthamError(`${path} is not a .pte file (identifier ${showIdentifier(id)}, expected "${PTE_IDENTIFIER}")`);
      }
      const header = parseExtendedHeader(head, path);
      let programSize: number;
      if (header) {
        if (header.programSize > fileSize) {
          throw new LuthamError(`${path} is truncated: the program needs ${header.programSize} bytes, the file has ${fileSize}`);
        }
        const end = header.segmentBaseOffset + header.segmentDataSize;
        if (header.segmentDataSize > 0 && end > fileSize) {
          throw new LuthamError(`${path} is truncated: segments end at byte ${end}, the file has ${fileSize}`);
        }
        if (header.segmentDataSize > 0 && header.segmentBaseOffset < header.programSize) {
          throw new LuthamError(`${path} is corrupt: segments start at ${header.segmentBaseOffset}, inside the ${header.programSize}-byte program`);
        }
        programSize = header.programSize;
      } else {
        if (fileSize > MAX_PROGRAM_BYTES) {
          throw new LuthamError(`${path}: a ${fileSize}-byte .pte without an extended header is too large to read`);
        }
        programSize = fileSize;
      }
      // A fresh Uint8Array (not a pooled Buffer) so typed views line up with the data.
      const programBytes = new Uint8Array(programSize);
      await readInto(handle, 0, programBytes, path);
      const program = guardParse(`${path}: the program flatbuffer`, () => {
        const p = Program.getRootAsProgram(new CheckedByteBuffer(programBytes));
        p.version(); // touch the root table so a bad root offset fails here
        return p;
      });
      const file = new PteFile(path, handle, fileSize, header, programBytes, program);
      file.validateSegments();
      return file;
    } catch (e) {
      await handle.close().catch(() => {});
      throw e;
    }
  }

  /** Opens `path`, runs `fn`, always closes. */
  static async with<T>(path: string, fn: (pte: PteFile) => Promise<T> | T): Promise<T> {
    const pte = await PteFile.open(path);
    try {
      return await fn(pte);
    } finally {
      await pte.close();
    }
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (h) await h.close();
  }

  get programSize(): number {
    return this.programBytes.length;
  }

  /** Absolute file offset of segment data (0 when the file has no segments). */
  get segmentBaseOffset(): number {
    return this.header?.segmentBaseOffset ?? 0;
  }

  get segmentCount(): number {
    return guardParse(`${this.path}: the segment table`, () => this.program.segmentsLength());
  }

  segment(index: number): SegmentRange {
    return guardParse(`${this.path}: segment ${index}`, () => {
      if (index < 0 || index >= this.program.segmentsLength()) {
        throw new LuthamError(`${this.path} is corrupt: segment ${index} does not exist (${this.program.segmentsLength()} segments)`);
      }
      const s = this.program.segments(index, new DataSegment())!;
      const offset = Number(s.offset());
      const size = Number(s.size());
      return { index, offset: this.segmentBaseOffset + offset, size };
    });
  }

  segments(): SegmentRange[] {
    const n = this.segmentCount;
    const out: SegmentRange[] = [];
    for (let i = 0; i < n; i++) out.push(this.segment(i));
    return out;
  }

  private validateSegments(): void {
    const n = this.segmentCount;
    if (n > 0 && !this.header) throw new LuthamError(`${this.path} is corrupt: ${n} segments but no extended header`);
    for (let i = 0; i < n; i++) {
      const s = this.segment(i);
      const end = s.offset + s.size;
      if (s.offset < this.segmentBaseOffset || end > this.fileSize) {
        throw new LuthamError(`${this.path} is truncated: segment ${i} spans bytes ${s.offset}..${end}, the file has ${this.fileSize}`);
      }
    }
  }

  /** Reads `length` bytes at absolute `offset`. */
  async read(offset: number, length: number): Promise<Uint8Array> {
    if (!this.handle) throw new LuthamError(`${this.path} is closed`);
    if (offset < 0 || length < 0 || offset + length > this.fileSize) {
      throw new LuthamError(`${this.path} is truncated: bytes ${offset}..${offset + length} are past its end (${this.fileSize})`);
    }
    const buf = new Uint8Array(length);
    await readInto(this.handle, offset, buf, this.path);
    return buf;
  }

  /** Reads segment `index`, or only its first `maxBytes` bytes. */
  async readSegment(index: number, maxBytes?: number): Promise<Uint8Array> {
    const s = this.segment(index);
    return this.read(s.offset, maxBytes === undefined ? s.size : Math.min(maxBytes, s.size));
  }

  /** Streams bytes [offset, offset+length) in chunks of at most `chunk` bytes (bounded memory). */
  async *stream(offset: number, length: number, chunk = 8 << 20): AsyncGenerator<Uint8Array> {
    let done = 0;
    const buf = new Uint8Array(Math.min(chunk, Math.max(length, 1)));
    while (done < length) {
      const n = Math.min(buf.length, length - done);
      const view = buf.subarray(0, n);
      await readInto(this.handle!, offset + done, view, this.path);
      yield view;
      done += n;
    }
  }
}

function parseExtendedHeader(head: Uint8Array, path: string): ExtendedHeader | null {
  if (head.length < 12) return null;
  const magic = String.fromCharCode(head[8], head[9], head[10], head[11]);
  if (magic !== EXTENDED_HEADER_MAGIC) return null;
  if (head.length < 8 + EXTENDED_HEADER_MIN_LENGTH) throw new LuthamError(`${path} is truncated inside its extended header`);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const length = view.getUint32(12, true);
  if (length < EXTENDED_HEADER_MIN_LENGTH) throw new LuthamError(`${path} is corrupt: extended header length ${length} < ${EXTENDED_HEADER_MIN_LENGTH}`);
  return {
    length,
    programSize: u64(view, 16, 'program_size'),
    segmentBaseOffset: u64(view, 24, 'segment_base_offset'),
    segmentDataSize: u64(view, 32, 'segment_data_size'),
  };
}

async function readExact(handle: FileHandle, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await readInto(handle, offset, buf, '');
  return buf;
}

async function readInto(handle: FileHandle, offset: number, buf: Uint8Array, path: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await handle.read(buf, done, buf.length - done, offset + done);
    if (bytesRead === 0) throw new LuthamError(`${path || 'file'} is truncated: wanted ${buf.length} bytes at ${offset}, got ${done}`);
    done += bytesRead;
  }
}
