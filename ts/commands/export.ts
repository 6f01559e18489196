import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { BACKBONES, EXPORT_METHODS, exportModels, type Backbone, type ExportMethods, type ExportReport } from '../lib/export.js';
import { formatExport } from '../render/export.js';
import { progressBar } from '../lib/progress.js';
import { LuthamError } from '../errors.js';
import { numberList } from '../lib/args.js';
import { jsonText, terminalText } from '../render/escape.js';

interface Args {
  backbone: Backbone;
  heads: number;
  out: string;
  widths?: string;
  grid?: number;
  order?: number;
  weights?: string;
  'allow-partial': boolean;
  'trust-pickle': boolean;
  seed: number;
  'codebook-size'?: number;
  'codebook-scope': 'heads' | 'layer';
  int8: boolean;
  fp32: boolean;
  'gain-bits'?: number;
  'bias-bits'?: number;
  'base-bits'?: number;
  model?: string;
  'input-shape'?: string;
  json: boolean;
  progress: boolean;
  'max-batch'?: number;
  'int8-baseline': boolean;
  'external-data': boolean;
  etrecord: boolean;
  'codebooks-from'?: string;
  'finetune-codebook': boolean;
  calibration?: string;
  'finetune-epochs'?: number;
  methods: ExportMethods;
  compute: 'float' | 'int8';
}

function parseWidths(s: string | undefined): number[] | undefined {
  const widths = numberList('--widths', s);
  if (widths && widths.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new LuthamError(`--widths must be positive integers like 2048,512,25, got '${s}'`);
  }
  return widths;
}

const exportCommand: CommandModule<{}, Args> = {
  command: 'export',
  describe: 'Build a model with KAN heads, compress it with SHARe-KAN, write dense.pte and lutham.pte',
  builder: (y: Argv) =>
    y
      .option('backbone', { choices: BACKBONES, default: 'resnet50' as Backbone, describe: 'feature extractor in front of the heads (none: heads on a flat input)' })
      .option('heads', { type: 'number', default: 1, describe: 'number of KAN heads' })
      .option('out', { type: 'string', default: 'out', describe: 'output directory' })
      .option('widths', { type: 'string', describe: 'head widths including the input, e.g. 2048,512,25 (default: features,512,25)' })
      .option('grid', { type: 'number', describe: 'B-spline grid intervals G (default 9)' })
      .option('order', { type: 'number', describe: 'B-spline order k (default 3)' })
      .option('weights', { type: 'string', describe: 'checkpoint (state dict) of the whole model' })
      .option('allow-partial', { type: 'boolean', default: false, describe: 'accept a --weights checkpoint that lacks some tensors (they keep the seeded init)' })
      .option('trust-pickle', { type: 'boolean', default: false, describe: 'allow a --model/--weights file that holds pickled Python objects (a whole nn.Module): loading it runs code from the file' })
      .option('seed', { type: 'number', default: 0, describe: 'seed for the model init and k-means' })
      .option('codebook-size', { type: 'number', describe: 'codewords K per codebook, up to 65536 (default 128)' })
      .option('codebook-scope', { choices: ['heads', 'layer'] as const, default: 'heads' as const, describe: 'heads: layer l of all heads shares one codebook; layer: one per layer' })
      .option('int8', { type: 'boolean', default: true, describe: 'integer storage: int8 codebook, gains/biases/base weights at --gain-bits/--bias-bits/--base-bits' })
      .option('fp32', { type: 'boolean', default: false, describe: 'keep everything float32 (same as --no-int8)' })
      .option('gain-bits', { type: 'number', describe: 'bits per gain, 2..8 (default 6)' })
      .option('bias-bits', { type: 'number', describe: 'bits per bias, 2..8 (default 4)' })
      .option('base-bits', { type: 'number', describe: 'bits per base weight, 2..8 (default 5)' })
      .option('model', { type: 'string', describe: 'your model instead of --backbone/--heads: model.pt (pickled nn.Module: needs --trust-pickle), model.pt2 (torch.export) or my_net.py:build (with --weights); its efficient-kan/pykan/FastKAN layers are converted' })
      .option('input-shape', { type: 'string', describe: 'input shape for --model when it cannot be inferred, e.g. 1,1,28,28' })
      .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON on stdout' })
      .option('progress', { type: 'boolean', default: true, describe: 'show progress on stderr' })
      .option('max-batch', { alias: 'batch', type: 'number', describe: 'both .pte files serve any batch from 1 to N (dynamic batch dimension; default 1)' })
      .option('int8-baseline', { type: 'boolean', default: true, describe: 'also measure the size of the folded dense model on XNNPACK int8 (--no-int8-baseline skips it)' })
      .option('etrecord', { type: 'boolean', default: false, describe: 'also write lutham.etrecord (ExecuTorch ETRecord): run --profile names the layers of its ETDump from it' })
      .option('external-data', { type: 'boolean', default: false, describe: 'write the codebooks to lutham.ptd (ExecuTorch external data) instead of lutham.pte; run it with --data' })
      .option('codebooks-from', { type: 'string', describe: 'reuse the codebooks of this .ptd instead of training new ones, so several programs share one .ptd' })
      .option('finetune-codebook', { type: 'boolean', default: false, describe: 'fine-tune the codebooks and gains to match the dense model\'s outputs on --calibration inputs before lowering (no labels needed)' })
      .option('calibration', { type: 'string', describe: 'a .npz with one float array of inputs shaped like the model\'s input (N first), for --finetune-codebook' })
      .option('finetune-epochs', { type: 'number', describe: 'passes over the calibration inputs for --finetune-codebook (default 20)' })
      .option('methods', { choices: EXPORT_METHODS, default: 'forward' as ExportMethods, describe: 'forward: lutham.pte has one method, the whole model; per-head: also backbone (image -> features; none with --backbone none) and head_0..head_{N-1} (features -> logits), sharing one copy of every weight and codebook (run --method NAME)' })
      .option('compute', { choices: ['float', 'int8'] as const, default: 'float' as const, describe: 'how LuthamBackend computes the layers: float (exact float32) or int8 (opt-in: 8-bit coefficient table, silu and basis sums, int32 dot products with VNNI; B-spline layers, integer storage, K <= 256)' })
      .example('$0 export --backbone none --heads 2 --external-data --out a', 'a/lutham.pte + a/lutham.ptd')
      .example('$0 export --backbone none --heads 3 --seed 1 --external-data --codebooks-from a/lutham.ptd --out b', 'b/lutham.pte runs with a/lutham.ptd')
      .example('$0 export --heads 50 --external-data --methods per-head --out app', 'app/lutham.pte with backbone, head_0..head_49 and forward; run one with run --method head_3') as Argv<Args>,
  handler: async (argv) => {
    const bar = progressBar(argv.progress);
    const started = Date.now();
    let report: ExportReport;
    try {
      report = await exportModels(
        {
          backbone: argv.backbone,
          heads: argv.heads,
          out: argv.out,
          widths: parseWidths(argv.widths),
          grid: argv.grid,
          order: argv.order,
          weights: argv.weights,
          allowPartial: argv['allow-partial'],
          trustPickle: argv['trust-pickle'],
          seed: argv.seed,
          codebookSize: argv['codebook-size'],
          codebookScope: argv['codebook-scope'],
          int8: argv.int8 && !argv.fp32,
          gainBits: argv['gain-bits'],
          biasBits: argv['bias-bits'],
          baseBits: argv['base-bits'],
          model: argv.model,
          inputShape: numberList('--input-shape', argv['input-shape']),
          maxBatch: argv['max-batch'],
          int8Baseline: argv['int8-baseline'],
          externalData: argv['external-data'],
          etrecord: argv.etrecord,
          codebooksFrom: argv['codebooks-from'],
          finetuneCodebook: argv['finetune-codebook'],
          calibration: argv.calibration,
          finetuneEpochs: argv['finetune-epochs'],
          methods: argv.methods,
          compute: argv.compute,
        },
        bar.update,
      );
    } finally {
      bar.stop();
    }
    // timing is printed, never stored: report.json is byte-identical for the same inputs
    process.stderr.write(`exported in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    process.stdout.write(argv.json ? jsonText(report) + '\n' : terminalText(formatExport(report, resolve(argv.out))) + '\n');
  },
};

export default exportCommand;
