// lutham eval with the user's own model: --checkpoint code + prefixed weights, eager, tiny subset.
import assert from 'node:assert/strict';

import { HANG_GUARD_MS, luthamAsync } from './helpers/cli.js';
import { userModel } from './helpers/session.js';

describe('eval: the user\'s own model', function () {
  this.timeout(HANG_GUARD_MS);

  it('eval --checkpoint my_net.py:build --weights: Table 1 of the converted model', async () => {
    const user = await userModel();
    const e = await luthamAsync(['eval', '--checkpoint', user.spec, '--weights', user.weights, '--subset', '40', '--engine', 'eager',
      '--ks', '8', '--sparsities', '0', '--uniform-bits', '8', '--codebook-size', '8', '--json', '--no-progress']);
    assert.equal(e.status, 0, e.stderr);
    const results = JSON.parse(e.stdout);
    assert.equal(results.models[0].edges, 4 * 7 * 7 * 8 + 8 * 10);
    assert.deepEqual(results.models[0].table1.map((row: { method: string }) => row.method), ['Dense', 'SHARe-KAN fp32', 'SHARe-KAN int']);
    assert.ok(results.models[0].table1.every((row: { accuracy: number }) => row.accuracy >= 0 && row.accuracy <= 1));
  });
});
