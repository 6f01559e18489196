import type { Argv, CommandModule } from 'yargs';
import { EVAL_SECTION } from '../lib/eval.js';
import { evalMarkdown } from '../render/eval.js';
import { checkMarkdown, updateMarkdown } from '../lib/markdown.js';
import { writeReport } from '../lib/report.js';
import { progressBar } from '../lib/progress.js';
import { evalOptionsFrom, withEvalOptions, type EvalArgs } from './eval.js';
import { escapeText, jsonText } from '../render/escape.js';

interface Args extends EvalArgs {
  out: string;
  results?: string;
  update?: string;
}

const reportCommand: CommandModule<{}, Args> = {
  command: 'report',
  describe: 'Write one self-contained HTML page (tables + inline SVG charts) and report.json from the eval results',
  builder: (y: Argv) =>
    withEvalOptions(
      y
        .option('out', { type: 'string', default: 'report.html', describe: 'the HTML file (report.json goes beside it)' })
        .option('results', { type: 'string', describe: "results of 'lutham eval --json' (without it the evaluation, with the flags below, runs first)" })
        .option('update', { type: 'string', describe: 'also replace the accuracy section of this Markdown file (BENCHMARKS.md)' })
        .option('json', { type: 'boolean', default: false, describe: 'print {html, json, charts, updated} as JSON' }),
    ) as unknown as Argv<Args>,
  handler: async (argv) => {
    if (argv.update) await checkMarkdown(argv.update, EVAL_SECTION);
    const bar = progressBar(argv.progress && !argv.results);
    let r;
    try {
      r = await writeReport({ out: argv.out, results: argv.results, ...evalOptionsFrom(argv) }, bar.update);
    } finally {
      bar.stop();
    }
    if (argv.update) await updateMarkdown(argv.update, evalMarkdown(r.results), EVAL_SECTION);
    const info = { html: r.html, json: r.json, charts: r.charts, updated: argv.update ?? null, target: r.results.target?.text ?? null };
    process.stdout.write(argv.json ? jsonText(info) + '\n'
      : `wrote ${escapeText(r.html)} (${r.charts} charts) and ${escapeText(r.json)}${info.updated ? `; updated ${escapeText(info.updated)}` : ''}\n${info.target ? `target: ${escapeText(info.target)}\n` : ''}`);
  },
};

export default reportCommand;
