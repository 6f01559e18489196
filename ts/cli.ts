#!/usr/bin/env node
/**
 * `lutham`: each command is a yargs command module in ts/commands/ that calls a library API
 * (ts/lib/, ts/pte/) which the tests call directly. Python starts only when a command needs it.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { shutdownPython } from './bridge/python.js';
import { LuthamError, oneLine } from './errors.js';
import exportCommand from './commands/export.js';
import runCommand from './commands/run.js';
import inspectCommand from './commands/inspect.js';
import compareCommand from './commands/compare.js';
import evalCommand from './commands/eval.js';
import reportCommand from './commands/report.js';
import benchCommand from './commands/bench.js';

function fail(err: unknown): never {
  shutdownPython(true);
  if (err instanceof LuthamError) {
    process.stderr.write(`lutham: ${oneLine(err.message)}\n`);
  } else {
    const e = err as Error;
    process.stderr.write(`lutham: internal error: ${oneLine(e?.message ?? String(err))}\n`);
    if (process.env.LUTHAM_DEBUG) process.stderr.write(`${e?.stack}\n`);
  }
  process.exit(1);
}

/** yargs turns a repeated flag into an array; only flags declared as arrays may repeat. */
function refuseRepeatedFlags(argv: Record<string, unknown>, y: { getOptions(): { array: string[] } }): void {
  const arrays = new Set(y.getOptions().array);
  for (const [key, value] of Object.entries(argv)) {
    if (key === '_' || key === '$0' || !Array.isArray(value) || arrays.has(key)) continue;
    if (key.includes('-') || !/[A-Z]/.test(key)) throw new LuthamError(`--${key} was given ${value.length} times; give it once`);
  }
}

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('lutham')
    .usage('$0 <command> [options]\n\nShip Kolmogorov-Arnold Networks to edge hardware: SHARe-KAN compression + an ExecuTorch delegate.')
    .command(exportCommand)
    .command(runCommand)
    .command(inspectCommand)
    .command(compareCommand)
    .command(evalCommand)
    .command(reportCommand)
    .command(benchCommand)
    .demandCommand(1, 'name a command (see lutham --help)')
    .strict()
    .middleware(refuseRepeatedFlags as unknown as (argv: object) => void, true)
    .fail((msg, err) => {
      if (err) throw err;
      // yargs spreads some messages (choices) over several lines; ours are one line.
      throw new LuthamError(msg.split('\n').map((l) => l.trim()).filter(Boolean).join(' '));
    })
    .help()
    .version()
    .parseAsync();
}

main(hideBin(process.argv))
  .then(() => shutdownPython())
  .catch(fail);
