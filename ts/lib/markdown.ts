/**
 * Generated sections of a Markdown file (BENCHMARKS.md): the text between a begin and an end
 * marker belongs to a command (`lutham bench --update`, `lutham eval --update`), the rest is
 * written by hand and kept byte for byte.
 */
import { readFile } from 'node:fs/promises';
import { LuthamError } from '../errors.js';
import { writeFileAtomic } from './files.js';

export interface SectionMarkers {
  begin: string;
  end: string;
}

/** `text` with the part between the markers replaced by `section`. */
export function replaceSection(text: string, section: string, markers: SectionMarkers, file = 'the file'): string {
  const begin = text.indexOf(markers.begin);
  const end = text.indexOf(markers.end);
  if (begin < 0 || end < begin) throw new LuthamError(`${file} has no '${markers.begin}' ... '${markers.end}' markers`);
  return `${text.slice(0, begin + markers.begin.length)}\n${section.trim()}\n${text.slice(end)}`;
}

async function readMarkdown(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    throw new LuthamError(`--update: cannot read ${path}`);
  }
}

/** Fails unless `path` can be updated (readable, with both markers): checked before long work. */
export async function checkMarkdown(path: string, markers: SectionMarkers): Promise<void> {
  replaceSection(await readMarkdown(path), '', markers, path);
}

/** Rewrites one section of a Markdown file in place (temp file + rename). */
export async function updateMarkdown(path: string, section: string, markers: SectionMarkers): Promise<void> {
  const updated = replaceSection(await readMarkdown(path), section, markers, path);
  await writeFileAtomic(path, updated);
}
