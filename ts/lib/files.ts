/**
 * The one way the TypeScript side writes a file: into a temp file beside it, then renamed over
 * it, so a reader never sees half a file and a failure leaves the old one (README: "Outputs are
 * written to temp files and renamed"). The temp name `.<name>.<pid>.tmp` is the one the export's
 * stale-temp sweep knows.
 */
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LuthamError } from '../errors.js';

export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw new LuthamError(`cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
