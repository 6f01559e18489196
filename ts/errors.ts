import { escapeText } from './render/escape.js';

/** An expected failure with a one-line message: the CLI prints `lutham: <message>` and exits 1. */
export class LuthamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LuthamError';
  }
}

const MAX_MESSAGE_CHARS = 2000;

/**
 * `message` made safe for one terminal line (render/escape.ts: the same escaping as every other
 * output): surrounding whitespace trimmed, a newline inside (e.g. in a path the message names)
 * written as `\n`, so the whole text stays on the line, and long messages cut.
 */
export function oneLine(message: string): string {
  const flat = escapeText(message.trim());
  return flat.length <= MAX_MESSAGE_CHARS ? flat : `${flat.slice(0, MAX_MESSAGE_CHARS)}... (${flat.length - MAX_MESSAGE_CHARS} more characters)`;
}
