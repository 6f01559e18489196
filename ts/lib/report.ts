/** Library API of `lutham report`: one self-contained HTML page (ts/render/report.ts draws it from
 * the `lutham eval` results) and report.json beside it. */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { callPython, type Progress } from '../bridge/python.js';
import { LuthamError } from '../errors.js';
import { renderReport } from '../render/report.js';
import { checkResults, evalArgs, validateEvalOptions, type EvalOptions, type EvalResults } from './eval.js';
import { writeFileAtomic } from './files.js';

export interface ReportOptions extends EvalOptions {
  out: string;
  /** A results JSON written by `lutham eval --json`; without it the evaluation runs first. */
  results?: string;
}

export interface ReportFiles {
  html: string;
  json: string;
  charts: number;
  results: EvalResults;
}

/**
 * Refuses, before any work, outputs that would fail or clobber something: --out naming a
 * directory, and a report.json beside it that `lutham report` did not write (an export's).
 */
async function checkReportTargets(html: string, json: string): Promise<void> {
  const info = await stat(html).catch(() => null);
  if (info?.isDirectory()) throw new LuthamError(`--out ${html} is a directory; name the HTML file, e.g. --out ${join(html, 'report.html')}`);
  if (info && !info.isFile()) throw new LuthamError(`--out ${html} exists and is not a regular file`);
  const dir = await stat(dirname(html)).catch(() => null);
  if (dir && !dir.isDirectory()) throw new LuthamError(`--out ${html}: ${dirname(html)} is not a directory`);
  let existing: string | null = null;
  try {
    existing = await readFile(json, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') throw new LuthamError(`--out ${html}: ${json} is a directory`);
    if (code !== 'ENOENT') throw new LuthamError(`--out ${html}: cannot read ${json} (${code})`);
  }
  if (existing !== null) {
    let ours = false;
    try {
      ours = (JSON.parse(existing) as { lutham_report?: unknown })?.lutham_report !== undefined;
    } catch {
      ours = false;
    }
    if (!ours) throw new LuthamError(`--out ${html}: ${json} already exists and was not written by 'lutham report' (an export's report?); choose another directory`);
  }
}

export async function readResults(path: string): Promise<EvalResults> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new LuthamError(`--results: cannot read ${path}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new LuthamError(`--results ${path} is not JSON: ${(e as Error).message}`);
  }
  return checkResults(data, `--results ${path}`);
}

/** Writes the HTML report to o.out and report.json beside it; runs the evaluation unless o.results. */
export async function writeReport(o: ReportOptions, progress?: Progress): Promise<ReportFiles> {
  if (!o.out) throw new LuthamError('--out is required');
  const html = resolve(o.out);
  const json = join(dirname(html), 'report.json');
  await checkReportTargets(html, json);
  let results: EvalResults;
  if (o.results) {
    results = await readResults(resolve(o.results));
  } else {
    validateEvalOptions(o);
    results = checkResults(await callPython('report', evalArgs(o), progress), 'the evaluation');
  }
  const page = renderReport(results);
  await writeFileAtomic(html, page);
  await writeFileAtomic(json, JSON.stringify({ lutham_report: 1, html, results }, null, 2) + '\n');
  return { html, json, charts: (page.match(/<svg class="chart"/g) ?? []).length, results };
}
