/** An expected failure with a one-line message: the CLI prints `lutham: <message>` and exits 1. */
export class LuthamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LuthamError';
  }
}

const MAX_MESSAGE_CHARS = 2000;

/**
 * `message` made safe for one terminal line: whitespace runs (newlines included) become one space,
 * and control characters, bidi overrides and U+FFFD (raw bytes from a corrupted file that reach
 * us through ExecuTorch's error text) are escaped, so they can neither move the cursor nor hide text.
 */
export function oneLine(message: string): string {
  const flat = message
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufffd]/g, (c) => {
      const code = c.codePointAt(0)!;
      return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
    });
  return flat.length <= MAX_MESSAGE_CHARS ? flat : `${flat.slice(0, MAX_MESSAGE_CHARS)}... (${flat.length - MAX_MESSAGE_CHARS} more characters)`;
}
