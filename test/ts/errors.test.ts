// ts/errors.ts: every failure reaches the terminal as one safe line.
import assert from 'node:assert/strict';

import { oneLine } from '../../ts/errors.js';

describe('errors: messages are one safe line', () => {
  it('oneLine trims, and escapes newlines, controls, bidi overrides and replacement characters', () => {
    assert.equal(oneLine('  bad\n\tfile\r\n'), 'bad\\n\\tfile');
    assert.equal(oneLine('a\x1b[31mb\x00c\x9bd'), 'a\\x1b[31mb\\x00c\\x9bd');
    assert.equal(oneLine('x\u202ey\ufffdz'), 'x\\u202ey\\ufffdz');
    assert.equal(oneLine('ünïcödé → ok'), 'ünïcödé → ok');
    const long = oneLine('y'.repeat(5000));
    assert.ok(long.startsWith('y'.repeat(2000) + '... (3000 more characters)'), long.slice(1990, 2040));
  });
});
