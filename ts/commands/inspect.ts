import type { Argv, CommandModule } from 'yargs';
import { LuthamError } from '../errors.js';
import { inspectPte } from '../pte/inspect.js';
import { formatInspect } from '../render/inspect.js';
import { jsonText, terminalText } from '../render/escape.js';

interface Args {
  file: string;
  json: boolean;
  verify: boolean;
}

const inspectCommand: CommandModule<{}, Args> = {
  command: 'inspect <file>',
  describe: 'Show what is inside a .pte: plans, operators, delegates, segments, named data, memory plan, LUTHAM layers',
  builder: (y: Argv) =>
    y
      .positional('file', { type: 'string', describe: 'the .pte file', demandOption: true })
      .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' })
      .option('verify', { type: 'boolean', default: false, describe: 'also decode every LUTHAM payload and codebook: CRC-32, every index, codebook SHA-256 (exit 1 on a failure)' })
      .example('$0 inspect out/lutham.pte', '')
      .example('$0 inspect out/lutham.pte --verify', '')
      .example('$0 inspect out/lutham.pte --json', '') as unknown as Argv<Args>,
  handler: async (argv) => {
    const report = await inspectPte(argv.file, { verify: argv.verify });
    process.stdout.write(argv.json ? jsonText(report) + '\n' : terminalText(formatInspect(report)));
    const failures = report.verified?.failures ?? [];
    if (failures.length > 0) throw new LuthamError(`--verify: ${failures.length} check(s) failed, the first: ${failures[0]}`);
  },
};

export default inspectCommand;
