import type { Argv, CommandModule } from 'yargs';
import { comparePte } from '../pte/compare.js';
import { formatCompare } from '../render/compare.js';
import { jsonText, terminalText } from '../render/escape.js';

interface Args {
  dense: string;
  lutham: string;
  data?: string;
  json: boolean;
}

const compareCommand: CommandModule<{}, Args> = {
  command: 'compare <dense> <lutham>',
  describe: 'Compare a Dense and a SHARe-KAN .pte byte by byte: KAN weights, codebook, other constants, program, padding, planned memory',
  builder: (y: Argv) =>
    y
      .positional('dense', { type: 'string', describe: 'the Dense .pte', demandOption: true })
      .positional('lutham', { type: 'string', describe: 'the SHARe-KAN .pte', demandOption: true })
      .option('data', { type: 'string', describe: 'the SHARe-KAN program\'s .ptd (export --external-data): counted with it' })
      .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' })
      .example('$0 compare out/dense.pte out/lutham.pte', '') as unknown as Argv<Args>,
  handler: async (argv) => {
    const c = await comparePte(argv.dense, argv.lutham, argv.data);
    process.stdout.write(argv.json ? jsonText(c) + '\n' : terminalText(formatCompare(c)));
  },
};

export default compareCommand;
