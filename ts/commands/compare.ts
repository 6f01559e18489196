import type { Argv, CommandModule } from 'yargs';
import { comparePte, formatCompare } from '../pte/compare.js';

interface Args {
  dense: string;
  lutham: string;
  json: boolean;
}

export const command = 'compare <dense> <lutham>';
export const describe = 'Compare a Dense and a SHARe-KAN .pte byte by byte: KAN weights, codebook, other constants, program, padding, planned memory';

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('dense', { type: 'string', describe: 'the Dense .pte', demandOption: true })
    .positional('lutham', { type: 'string', describe: 'the SHARe-KAN .pte', demandOption: true })
    .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' })
    .example('$0 compare out/dense.pte out/lutham.pte', '') as unknown as Argv<Args>;
}

export async function handler(argv: Args): Promise<void> {
  const c = await comparePte(argv.dense, argv.lutham);
  process.stdout.write(argv.json ? JSON.stringify(c, null, 2) + '\n' : formatCompare(c));
}

const compareCommand: CommandModule<{}, Args> = { command, describe, builder, handler };
export default compareCommand;
