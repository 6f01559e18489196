import type { Argv, CommandModule } from 'yargs';
import { BENCH_SECTION, BENCH_VARIANTS, runBench, type BenchVariant } from '../lib/bench.js';
import { checkMarkdown, updateMarkdown } from '../lib/markdown.js';
import { numberList } from '../lib/args.js';
import { progressBar } from '../lib/progress.js';
import { jsonText, terminalText } from '../render/escape.js';

interface Args {
  heads: number;
  batch: string;
  widths?: string;
  grid?: number;
  'codebook-size'?: number;
  seed: number;
  warmup: number;
  repeat: number;
  'min-seconds': number;
  variants?: string;
  'bandwidth-mb'?: number;
  cold: boolean;
  'evict-mib'?: number;
  update?: string;
  json: boolean;
  progress: boolean;
}

const benchCommand: CommandModule<{}, Args> = {
  command: 'bench',
  describe: 'Time LUTHAM against PyTorch eager, dense.pte, folded dense and the folded matmuls alone on XNNPACK (fp32, int8), warm and --cold, against each one\'s read-bandwidth bound: same model and inputs, one run',
  builder: (y: Argv) =>
    y
      .option('heads', { type: 'number', default: 1, describe: 'KAN heads (on a flat input, no backbone)' })
      .option('batch', { type: 'string', default: '1,32', describe: 'batch sizes to time, e.g. 1,32 (one dynamic-batch program per variant serves all)' })
      .option('widths', { type: 'string', describe: 'head widths including the input (default 2048,512,25)' })
      .option('grid', { type: 'number', describe: 'B-spline grid intervals G (default 9)' })
      .option('codebook-size', { type: 'number', describe: 'codewords K (default 128)' })
      .option('seed', { type: 'number', default: 0, describe: 'seed of the model, k-means and inputs' })
      .option('warmup', { type: 'number', default: 3, describe: 'untimed runs before timing each batch' })
      .option('repeat', { type: 'number', default: 10, describe: 'timed runs at least (the median is reported)' })
      .option('min-seconds', { type: 'number', default: 1, describe: 'keep timing each batch at least this long' })
      .option('variants', { type: 'string', describe: `comma-separated subset of ${BENCH_VARIANTS.join(',')} (lutham-int is always run: ratios are to it)` })
      .option('bandwidth-mb', { type: 'number', describe: 'MiB read by lutham_membw, the read-only loop that sets the bound (default max(1024, 4x LLC))' })
      .option('cold', { type: 'boolean', default: false, describe: 'also time every variant with the caches evicted before each run' })
      .option('evict-mib', { type: 'number', describe: 'MiB written before each cold run (default max(512, 2x LLC))' })
      .option('update', { type: 'string', describe: 'replace the bench section of this Markdown file (BENCHMARKS.md) with the results' })
      .option('json', { type: 'boolean', default: false, describe: 'print the results as JSON' })
      .option('progress', { type: 'boolean', default: true, describe: 'show progress on stderr' }) as Argv<Args>,
  handler: async (argv) => {
    if (argv.update) await checkMarkdown(argv.update, BENCH_SECTION);
    const bar = progressBar(argv.progress);
    let result;
    try {
      result = await runBench(
        {
          heads: argv.heads,
          batches: numberList('--batch', argv.batch),
          widths: numberList('--widths', argv.widths),
          grid: argv.grid,
          codebookSize: argv['codebook-size'],
          seed: argv.seed,
          warmup: argv.warmup,
          repeat: argv.repeat,
          minSeconds: argv['min-seconds'],
          variants: argv.variants?.split(',').map((v) => v.trim()) as BenchVariant[] | undefined,
          bandwidthMb: argv['bandwidth-mb'],
          cold: argv.cold,
          evictMib: argv['evict-mib'],
        },
        bar.update,
      );
    } finally {
      bar.stop();
    }
    if (argv.update) await updateMarkdown(argv.update, result.markdown, BENCH_SECTION);
    process.stdout.write(argv.json ? jsonText(result) + '\n' : terminalText(result.markdown) + '\n');
  },
};

export default benchCommand;
