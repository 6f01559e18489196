// The TypeScript .pte and payload readers under seeded random mutations of real files
// (issue 9, fuzzing): every mutant must be read or rejected with a one-line LuthamError;
// never another exception, never a hang. The readers run in a child process that must report
// every few seconds, so a synchronous infinite loop is caught too.
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { FuzzJob, FuzzMessage } from './helpers/fuzz-worker.js';
import { smallPtes } from './helpers/session.js';

const SEED = 20261125;
const FILE_ITERATIONS = 1500;
const PAYLOAD_ITERATIONS = 6000;
/** A worker silent for this long is stuck (a hang guard, not a timing check). */
const SILENCE_MS = 60_000;

describe('fuzz: .pte and payload readers under seeded mutations', function () {
  this.timeout(900_000);
  let workDir: string;
  before(() => { workDir = mkdtempSync(join(tmpdir(), 'lutham-fuzz-')); });
  after(() => rmSync(workDir, { recursive: true, force: true }));

  it(`${FILE_ITERATIONS} mutated files and ${PAYLOAD_ITERATIONS} mutated payloads/codebooks: only typed errors, no hang`, async () => {
    const pair = await smallPtes();
    const facts = pair.facts[pair.lutham];
    const seg = facts.plans[0].delegates.find((d) => d.id === 'LuthamBackend' && d.location === 'segment')!;
    const s = facts.segments[seg.index];
    const cb = facts.named_data.find((n) => n.codebook)!;
    const c = facts.segments[cb.segment_index];
    const job: FuzzJob = {
      seed: SEED,
      fileIterations: FILE_ITERATIONS,
      payloadIterations: PAYLOAD_ITERATIONS,
      dense: pair.dense,
      lutham: pair.lutham,
      payload: [facts.segment_base_offset + s.offset, s.size],
      codebook: [facts.segment_base_offset + c.offset, c.size],
      programSize: facts.program_size,
      workDir,
    };
    const bad: FuzzMessage[] = [];
    const done = await new Promise<Extract<FuzzMessage, { kind: 'done' }>>((resolve, reject) => {
      const worker = fork(fileURLToPath(new URL('./helpers/fuzz-worker.ts', import.meta.url)), [JSON.stringify(job)], {
        execArgv: ['--import', 'tsx'],
      });
      let last = -1;
      let timer: NodeJS.Timeout;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          worker.kill('SIGKILL');
          reject(new Error(`the readers hung after iteration ${last} (seed ${SEED})`));
        }, SILENCE_MS);
      };
      arm();
      worker.on('message', (m: FuzzMessage) => {
        arm();
        if (m.kind === 'progress') last = m.iteration;
        else if (m.kind === 'bad') bad.push(m);
        else {
          clearTimeout(timer);
          worker.kill('SIGKILL');
          resolve(m);
        }
      });
      worker.on('error', (e) => { clearTimeout(timer); reject(e); });
      // Resolved already when it said 'done'; otherwise it crashed (an uncaught error or abort).
      worker.on('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`the fuzz process ended without finishing (${signal ?? `exit code ${code}`}) after iteration ${last}`)); });
    });
    if (process.env.LUTHAM_FUZZ_VERBOSE) console.log(`${done.ok} read, ${done.rejected} rejected, ${done.messages.length} distinct errors:\n${done.messages.join('\n')}`);
    assert.deepEqual(bad, [], `untyped errors (mutants kept in ${workDir}):\n${JSON.stringify(bad.slice(0, 5), null, 2)}`);
    // The mutations must reach the checks, not only the first one: many distinct messages.
    assert.ok(done.rejected > FILE_ITERATIONS / 2, `only ${done.rejected} rejected`);
    assert.ok(done.ok > 0, 'no mutant was readable: the mutations are too coarse');
    assert.ok(done.messages.length >= 10, `only ${done.messages.length} distinct errors:\n${done.messages.join('\n')}`);
  });
});
