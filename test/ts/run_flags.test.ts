// Issue 15.11: `lutham run --seed` follows export's rule (a non-negative integer; on main -1 and
// 1.5 were accepted, 1.5 acting as 1). That run's warnings go to stderr: run.test.ts and render.test.ts.
import assert from 'node:assert/strict';

import { LuthamError } from '../../ts/errors.js';
import { runProgram } from '../../ts/lib/run.js';

describe('lutham run flags and warnings', () => {
  for (const seed of [-1, 1.5]) {
    it(`--seed ${seed} is refused before anything runs`, async () => {
      await assert.rejects(runProgram({ model: '/nonexistent/x.pte', seed }),
        (e: Error) => e instanceof LuthamError && e.message === `--seed must be a non-negative integer, got ${seed}`);
    });
  }
});
