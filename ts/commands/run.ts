import type { Argv, CommandModule } from 'yargs';
import { runProgram } from '../lib/run.js';
import { formatRun, runWarnings } from '../render/run.js';
import { jsonText, terminalText } from '../render/escape.js';
import { LuthamError } from '../errors.js';

interface Args {
  model: string;
  data?: string;
  input?: string[];
  output?: string;
  repeat: number;
  seed: number;
  json: boolean;
  profile: boolean;
  etdump?: string;
  etrecord?: string;
  method: string;
}

const runCommand: CommandModule<{}, Args> = {
  command: 'run <model>',
  describe: 'Run a .pte (lutham.pte or dense.pte) with ExecuTorch and LuthamBackend: output shapes, checksum, median time',
  builder: (y: Argv) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'the .pte file' })
      .option('method', { type: 'string', default: 'forward', describe: 'the method to run (export --methods per-head writes backbone, head_0..head_{N-1} and forward; inspect lists them)' })
      .option('data', { type: 'string', describe: 'the .ptd holding the program\'s external data (export --external-data writes lutham.ptd)' })
      .option('input', { type: 'string', array: true, describe: '.npy file per program input (default: seeded random inputs)' })
      .option('output', { type: 'string', describe: 'write the first output here (.npy)' })
      .option('repeat', { type: 'number', default: 10, describe: 'runs to time (the median is printed)' })
      .option('seed', { type: 'number', default: 0, describe: 'seed of the random inputs' })
      .option('profile', { type: 'boolean', default: false, describe: 'profile the runs with ExecuTorch (ETDump + Inspector) and print the per-layer table' })
      .option('etdump', { type: 'string', describe: 'with --profile: where the ETDump goes (default: the .pte with .etdp)' })
      .option('etrecord', { type: 'string', describe: 'with --profile: the ETRecord naming the layers (default: lutham.etrecord beside the .pte, written by export --etrecord)' })
      .example('$0 run app/lutham.pte --data app/lutham.ptd --method head_3 --input features.npy', 'one head on its features')
      .example('$0 run out/lutham.pte --profile', 'per-layer times from ExecuTorch\'s profiler; out/lutham.etdp for the Inspector')
      .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON' }) as Argv<Args>,
  handler: async (argv) => {
    if (!argv.profile && (argv.etdump !== undefined || argv.etrecord !== undefined)) throw new LuthamError('--etdump and --etrecord need --profile');
    const etdump = argv.profile ? argv.etdump ?? argv.model.replace(/(\.pte)?$/, '.etdp') : undefined;
    const r = await runProgram({ model: argv.model, method: argv.method, data: argv.data, inputs: argv.input, output: argv.output, repeat: argv.repeat, seed: argv.seed, etdump, etrecord: argv.etrecord });
    if (argv.json) {
      process.stdout.write(jsonText(r) + '\n');
      return;
    }
    for (const w of runWarnings(r)) process.stderr.write(terminalText(w) + '\n'); // warnings go to stderr, like every warning
    process.stdout.write(terminalText(formatRun(r)) + '\n');
  },
};

export default runCommand;
