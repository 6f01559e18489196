// A flatbuffers ByteBuffer that refuses to read outside its bytes.
//
// The npm `flatbuffers` runtime has no verifier: an out-of-range read returns
// `undefined`, which the bit operations turn into 0, so a truncated or garbage buffer
// silently yields nonsense. Every read of the generated code goes through the few
// primitives overridden here, so checking them turns garbage into a clear error.
import * as flatbuffers from 'flatbuffers';

/** Thrown by CheckedByteBuffer; callers turn it into a LuthamError with context. */
export class FlatbufferRangeError extends Error {}

export class CheckedByteBuffer extends flatbuffers.ByteBuffer {
  private readonly size: number;

  constructor(bytes: Uint8Array) {
    super(bytes);
    this.size = bytes.length;
  }

  private check(offset: number, width: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset + width > this.size) {
      throw new FlatbufferRangeError(`read of ${width} bytes at offset ${offset} is outside the ${this.size}-byte buffer`);
    }
  }

  override readUint8(offset: number): number {
    this.check(offset, 1);
    return super.readUint8(offset);
  }

  override readUint16(offset: number): number {
    this.check(offset, 2);
    return super.readUint16(offset);
  }

  override readInt32(offset: number): number {
    this.check(offset, 4);
    return super.readInt32(offset);
  }

  override __string(offset: number, optionalEncoding?: flatbuffers.Encoding): string | Uint8Array {
    const start = offset + this.readInt32(offset);
    const length = this.readInt32(start);
    if (length < 0) throw new FlatbufferRangeError(`negative string length ${length} at offset ${start}`);
    this.check(start + 4, length);
    return super.__string(offset, optionalEncoding);
  }

  override __vector_len(offset: number): number {
    const len = super.__vector_len(offset);
    const start = this.__vector(offset);
    // Every element is at least one byte; a length beyond the buffer is garbage.
    if (len < 0 || start < 0 || start + len > this.size) {
      throw new FlatbufferRangeError(`vector of ${len} elements at offset ${start} does not fit in the ${this.size}-byte buffer`);
    }
    return len;
  }
}

/** The 4-byte file identifier of a flatbuffer (bytes 4..8), or '' when too short. */
export function fileIdentifier(bytes: Uint8Array): string {
  if (bytes.length < 8) return '';
  return String.fromCharCode(bytes[4], bytes[5], bytes[6], bytes[7]);
}

/** Printable form of an identifier for error messages. */
export function showIdentifier(id: string): string {
  return /^[\x20-\x7e]{4}$/.test(id) ? `"${id}"` : JSON.stringify(Array.from(id, (c) => c.charCodeAt(0)));
}
