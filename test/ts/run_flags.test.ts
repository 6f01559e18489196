// Issue 15.11: `lutham run --seed` follows export's rule (a non-negative integer; on main -1 and
// 1.5 were accepted, 1.5 acting as 1), and run's warnings go to stderr, not into stdout's text.
import assert from 'node:assert/strict';

import { splitWarnings } from '../../ts/commands/run.js';
import { LuthamError } from '../../ts/errors.js';
import { runProgram } from '../../ts/lib/run.js';

describe('lutham run flags and warnings', () => {
  for (const seed of [-1, 1.5]) {
    it(`--seed ${seed} is refused before anything runs`, async () => {
      await assert.rejects(runProgram({ model: '/nonexistent/x.pte', seed }),
        (e: Error) => e instanceof LuthamError && e.message === `--seed must be a non-negative integer, got ${seed}`);
    });
  }

  it('the NaN warning leaves the text for stderr', () => {
    const r = splitWarnings('model: m.pte\nwarning: input 0 has 3 NaN/Inf value(s)\noutput 0: float32 [1, 2]');
    assert.equal(r.text, 'model: m.pte\noutput 0: float32 [1, 2]');
    assert.equal(r.warnings, 'warning: input 0 has 3 NaN/Inf value(s)');
  });
});
