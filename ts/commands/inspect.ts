import type { Argv, CommandModule } from 'yargs';
import { formatInspect, inspectPte } from '../pte/inspect.js';

interface Args {
  file: string;
  json: boolean;
}

export const command = 'inspect <file>';
export const describe = 'Show what is inside a .pte: plans, operators, delegates, segments, named data, memory plan, LUTHAM layers';

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('file', { type: 'string', describe: 'the .pte file', demandOption: true })
    .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' })
    .example('$0 inspect out/lutham.pte', '')
    .example('$0 inspect out/lutham.pte --json', '') as unknown as Argv<Args>;
}

export async function handler(argv: Args): Promise<void> {
  const report = await inspectPte(argv.file);
  process.stdout.write(argv.json ? JSON.stringify(report, null, 2) + '\n' : formatInspect(report));
}

const inspectCommand: CommandModule<{}, Args> = { command, describe, builder, handler };
export default inspectCommand;
