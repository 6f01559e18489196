import type { Argv, CommandModule } from 'yargs';
import { EVAL_MODELS, EVAL_SECTION, runEval, type EvalModel, type EvalOptions, type EvalResults } from '../lib/eval.js';
import { checkMarkdown, updateMarkdown } from '../lib/markdown.js';
import { progressBar } from '../lib/progress.js';
import { numberList } from '../lib/args.js';
import { evalMarkdown, formatEval } from '../render/eval.js';
import { escapeText, jsonText, terminalText } from '../render/escape.js';

/** The evaluation flags, shared by `lutham eval` and `lutham report` (which may run it first). */
export interface EvalArgs {
  dataset: string;
  data?: string;
  pixels?: '0,1' | '-1,1';
  checkpoint?: string;
  weights?: string;
  'trust-pickle': boolean;
  subset?: number;
  epochs?: number;
  seed: number;
  models?: string;
  'codebook-size'?: number;
  'gain-bits'?: number;
  'bias-bits'?: number;
  'base-bits'?: number;
  'finetune-codebook': boolean;
  'int8-compute': boolean;
  engine: 'auto' | 'eager';
  ks?: string;
  sparsities?: string;
  'uniform-bits'?: string;
  threads?: number;
  json: boolean;
  progress: boolean;
}

export function withEvalOptions<T>(y: Argv<T>): Argv<T & EvalArgs> {
  return y
    .option('dataset', { type: 'string', default: 'fashion-mnist', describe: 'fashion-mnist (Debian dataset-fashion-mnist)' })
    .option('data', { type: 'string', describe: 'your data instead: an .npz (x, y or x_train, y_train, x_test, y_test) or an image folder (one subfolder per class)' })
    .option('pixels', { choices: ['0,1', '-1,1'] as const, describe: '8-bit pixels (the built-in dataset, image folders, uint8 .npz) are mapped to this range (default -1,1); float --data is fed as given' })
    .option('checkpoint', { type: 'string', describe: 'your model: model.pt (pickled nn.Module with --trust-pickle, or a state dict of the pure/Vision KAN or of KAN layers under any prefix), model.pt2, or my_net.py:build with --weights; efficient-kan/pykan/FastKAN layers are converted' })
    .option('weights', { type: 'string', describe: 'with --checkpoint my_net.py:build: the state dict to load (keys under any prefix)' })
    .option('trust-pickle', { type: 'boolean', default: false, describe: 'allow a --checkpoint/--weights file that holds pickled Python objects (a whole nn.Module): loading it runs code from the file' })
    .option('subset', { type: 'number', describe: 'use only the first N training and N test images (fast checks)' })
    .option('epochs', { type: 'number', describe: 'training epochs (default: pure KAN 4, Vision KAN 3); trained models are cached in $LUTHAM_CACHE (default ~/.cache/lutham)' })
    .option('seed', { type: 'number', default: 0, describe: 'seed of the init, shuffling and k-means' })
    .option('models', { type: 'string', describe: `comma-separated, from ${EVAL_MODELS.join(', ')} (default both)` })
    .option('codebook-size', { type: 'number', describe: 'default K for Table 1 (default 128)' })
    .option('gain-bits', { type: 'number', describe: 'bits per gain (default 6)' })
    .option('bias-bits', { type: 'number', describe: 'bits per bias (default 4)' })
    .option('base-bits', { type: 'number', describe: 'bits per base weight (default 5)' })
    .option('finetune-codebook', { type: 'boolean', default: false, describe: 'also fine-tune the codebooks briefly on a calibration split (plain k-means and SHARe-KAN)' })
    .option('int8-compute', { type: 'boolean', default: false, describe: 'also run SHARe-KAN int in LuthamBackend\'s int8 compute mode (export --compute int8): a fourth Table 1 row' })
    .option('engine', { choices: ['auto', 'eager'] as const, default: 'auto' as const, describe: 'auto: Table 1 runs lutham.pte through ExecuTorch when the backend is built' })
    .option('ks', { type: 'string', describe: 'K values of the saturation sweep (default 16,64,256,1024,4096,16384,65536)' })
    .option('sparsities', { type: 'string', describe: 'pruning sparsities (default 0,0.1,0.3,0.5,0.7)' })
    .option('uniform-bits', { type: 'string', describe: 'uniform quantization widths (default 2,3,4,8)' })
    .option('threads', { type: 'number', describe: 'torch threads (default: torch decides)' })
    .option('progress', { type: 'boolean', default: true, describe: 'show progress on stderr' }) as unknown as Argv<T & EvalArgs>;
}

export function evalOptionsFrom(argv: EvalArgs): EvalOptions {
  return {
    dataset: argv.dataset,
    data: argv.data,
    pixels: argv.pixels,
    checkpoint: argv.checkpoint,
    weights: argv.weights,
    trustPickle: argv['trust-pickle'],
    subset: argv.subset,
    epochs: argv.epochs,
    seed: argv.seed,
    models: argv.models?.split(',').map((m) => m.trim()) as EvalModel[] | undefined,
    codebookSize: argv['codebook-size'],
    gainBits: argv['gain-bits'],
    biasBits: argv['bias-bits'],
    baseBits: argv['base-bits'],
    finetuneCodebook: argv['finetune-codebook'],
    int8Compute: argv['int8-compute'],
    engine: argv.engine,
    ks: numberList('--ks', argv.ks),
    sparsities: numberList('--sparsities', argv.sparsities),
    uniformBits: numberList('--uniform-bits', argv['uniform-bits']),
    threads: argv.threads,
  };
}

interface Args extends EvalArgs {
  update?: string;
}

const evalCommand: CommandModule<{}, Args> = {
  command: 'eval',
  describe: 'Train (or load) Fashion-MNIST KANs, compress them, print accuracy tables: Table 1, VQ saturation, pruning cliff, baselines',
  builder: (y: Argv) =>
    withEvalOptions(
      y
        .option('json', { type: 'boolean', default: false, describe: 'print the results as JSON (input of lutham report --results)' })
        .option('update', { type: 'string', describe: 'replace the accuracy section of this Markdown file (BENCHMARKS.md) with the results' }),
    ) as unknown as Argv<Args>,
  handler: async (argv) => {
    if (argv.update) await checkMarkdown(argv.update, EVAL_SECTION);
    const bar = progressBar(argv.progress);
    let results: EvalResults;
    try {
      results = await runEval(evalOptionsFrom(argv), bar.update);
    } finally {
      bar.stop();
    }
    for (const w of results.warnings ?? []) process.stderr.write(`warning: ${escapeText(w)}\n`);
    if (argv.update) await updateMarkdown(argv.update, evalMarkdown(results), EVAL_SECTION);
    process.stdout.write(argv.json ? jsonText(results) + '\n' : terminalText(formatEval(results)) + '\n');
  },
};

export default evalCommand;
