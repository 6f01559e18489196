import type { Argv, CommandModule } from 'yargs';
import { EVAL_MODELS, type EvalModel } from '../lib/eval.js';
import { writeReport } from '../lib/report.js';
import { progressBar } from '../lib/progress.js';
import { numberList } from './eval.js';

interface Args {
  out: string;
  results?: string;
  dataset: string;
  data?: string;
  checkpoint?: string;
  subset?: number;
  epochs?: number;
  seed: number;
  models?: string;
  'finetune-codebook': boolean;
  engine: 'auto' | 'eager';
  ks?: string;
  json: boolean;
  progress: boolean;
}

const reportCommand: CommandModule<{}, Args> = {
  command: 'report',
  describe: 'Write one self-contained HTML page (tables + inline SVG charts) and report.json from the eval results',
  builder: (y: Argv) =>
    y
      .option('out', { type: 'string', default: 'report.html', describe: 'the HTML file (report.json goes beside it)' })
      .option('results', { type: 'string', describe: "results of 'lutham eval --json' (without it the evaluation runs first)" })
      .option('dataset', { type: 'string', default: 'fashion-mnist', describe: 'as lutham eval' })
      .option('data', { type: 'string', describe: 'as lutham eval' })
      .option('checkpoint', { type: 'string', describe: 'as lutham eval' })
      .option('subset', { type: 'number', describe: 'as lutham eval' })
      .option('epochs', { type: 'number', describe: 'as lutham eval' })
      .option('seed', { type: 'number', default: 0, describe: 'as lutham eval' })
      .option('models', { type: 'string', describe: `as lutham eval (${EVAL_MODELS.join(', ')})` })
      .option('finetune-codebook', { type: 'boolean', default: false, describe: 'as lutham eval' })
      .option('engine', { choices: ['auto', 'eager'] as const, default: 'auto' as const, describe: 'as lutham eval' })
      .option('ks', { type: 'string', describe: 'as lutham eval' })
      .option('json', { type: 'boolean', default: false, describe: 'print {html, json, charts} as JSON' })
      .option('progress', { type: 'boolean', default: true, describe: 'show progress on stderr' }) as Argv<Args>,
  handler: async (argv) => {
    const bar = progressBar(argv.progress && !argv.results);
    let r;
    try {
      r = await writeReport(
        {
          out: argv.out,
          results: argv.results,
          dataset: argv.dataset,
          data: argv.data,
          checkpoint: argv.checkpoint,
          subset: argv.subset,
          epochs: argv.epochs,
          seed: argv.seed,
          models: argv.models?.split(',').map((m) => m.trim()) as EvalModel[] | undefined,
          finetuneCodebook: argv['finetune-codebook'],
          engine: argv.engine,
          ks: numberList('--ks', argv.ks),
        },
        bar.update,
      );
    } finally {
      bar.stop();
    }
    const info = { html: r.html, json: r.json, charts: r.charts, target: r.results.target?.text ?? null };
    process.stdout.write(argv.json ? JSON.stringify(info, null, 2) + '\n' : `wrote ${r.html} (${r.charts} charts) and ${r.json}\n${info.target ? `target: ${info.target}\n` : ''}`);
  },
};

export default reportCommand;
