/**
 * The one escaping of text that came from a file or a user (paths, operator and plan names,
 * Python's error text) on its way to a terminal: control characters (newlines included), bidi
 * overrides and U+FFFD (raw bytes from a corrupted file) become visible escapes, so they can
 * neither move the cursor, hide text nor split a one-line message. Every CLI output goes through
 * it: errors (oneLine), the rendered text (terminalText), JSON (jsonText).
 */

/** The characters never written raw: C0/C1 controls, DEL, bidi marks/overrides/isolates, U+FFFD. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufffd]/g;
const UNSAFE_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufffd]/g;
/** What JSON.stringify leaves raw inside strings (it escapes C0 itself; its own newlines are layout). */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufffd]/g;
const SHORT: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeChar(c: string): string {
  const code = c.codePointAt(0)!;
  return SHORT[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
}

/** `s` with every unsafe character escaped (a newline becomes `\n`): one field, one line. */
export function escapeText(s: string): string {
  return s.replace(UNSAFE, escapeChar);
}

/**
 * Rendered text for stdout/stderr: its own line breaks kept, every other unsafe character escaped.
 * Renderers escape each field with escapeText (so a newline in a path cannot start a line); this
 * catches what reaches the terminal anyway.
 */
export function terminalText(text: string): string {
  return text.replace(UNSAFE_BUT_NEWLINE, escapeChar);
}

/**
 * `value` as indented JSON that parses back to the same value, with the unsafe characters JSON
 * leaves raw (DEL, C1, bidi, U+FFFD) written as \uXXXX too.
 */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(UNSAFE_IN_JSON, (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}
