import type { Argv, CommandModule } from 'yargs';
import { LuthamError } from '../errors.js';
import { open, stat } from 'node:fs/promises';
import { inspectPte } from '../pte/inspect.js';
import { isPtd, readPtd } from '../pte/ptd.js';
import { formatInspect, formatPtd } from '../render/inspect.js';
import { jsonText, terminalText } from '../render/escape.js';

interface Args {
  file: string;
  data?: string;
  json: boolean;
  verify: boolean;
}

const inspectCommand: CommandModule<{}, Args> = {
  command: 'inspect <file>',
  describe: 'Show what is inside a .pte (plans, operators, delegates, segments, named data, memory plan, LUTHAM layers) or a .ptd',
  builder: (y: Argv) =>
    y
      .positional('file', { type: 'string', describe: 'the .pte (or .ptd) file', demandOption: true })
      .option('data', { type: 'string', describe: 'the .ptd the .pte reads its external data from: check that it holds every key the .pte expects' })
      .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' })
      .option('verify', { type: 'boolean', default: false, describe: 'also decode every LUTHAM payload and codebook: CRC-32, every index, codebook SHA-256 (exit 1 on a failure)' })
      .example('$0 inspect out/lutham.pte', '')
      .example('$0 inspect out/lutham.pte --verify', '')
      .example('$0 inspect out/lutham.pte --json', '')
      .example('$0 inspect out/lutham.pte --data out/lutham.ptd', '') as unknown as Argv<Args>,
  handler: async (argv) => {
    if (await startsLikePtd(argv.file)) {
      const ptd = await readPtd(argv.file, { verify: argv.verify });
      process.stdout.write(argv.json ? jsonText(ptd) + '\n' : terminalText(formatPtd(ptd)));
      const failed = ptd.verified?.failures ?? [];
      if (failed.length > 0) throw new LuthamError(`--verify: ${failed.length} check(s) failed, the first: ${failed[0]}`);
      return;
    }
    const report = await inspectPte(argv.file, { verify: argv.verify, data: argv.data });
    process.stdout.write(argv.json ? jsonText(report) + '\n' : terminalText(formatInspect(report)));
    const failures = report.verified?.failures ?? [];
    if (failures.length > 0) throw new LuthamError(`--verify: ${failures.length} check(s) failed, the first: ${failures[0]}`);
  },
};

/** Whether the file has a .ptd's identifier (anything else goes to the .pte reader and its errors). */
async function startsLikePtd(path: string): Promise<boolean> {
  try {
    if (!(await stat(path)).isFile()) return false; // a FIFO would block the open; the .pte reader names it
    const f = await open(path, 'r');
    try {
      const head = new Uint8Array(8);
      const { bytesRead } = await f.read(head, 0, 8, 0);
      return bytesRead === 8 && isPtd(head);
    } finally {
      await f.close();
    }
  } catch {
    return false;
  }
}

export default inspectCommand;
