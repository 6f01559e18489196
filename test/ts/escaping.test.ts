// Issue 15.10: every CLI output that carries file or user text goes through one escaping
// (ts/render/escape.ts). On the code before it: `--out` with a newline lost everything before the
// newline in its one-line error ("lutham: bad: cannot create it"), and `inspect` wrote a corrupted
// operator name's raw ESC and U+FFFD to stdout.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { escapeText, jsonText, terminalText } from '../../ts/render/escape.js';
import { assertOneLine, HANG_GUARD_MS, luthamAsync } from './helpers/cli.js';
import { smallPtes } from './helpers/session.js';

/** What a terminal must never receive raw from a file or a user. */
const RAW = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufffd]/;

describe('escaping: file and user text reach the terminal escaped', function () {
  this.timeout(HANG_GUARD_MS);
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'lutham-escape-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('escapeText, terminalText and jsonText', () => {
    assert.equal(escapeText('a\nb\tc\x1b[2J\u202ed\ufffd'), 'a\\nb\\tc\\x1b[2J\\u202ed\\ufffd');
    assert.equal(terminalText('line 1 \x1b[31m\nline 2\ufffd'), 'line 1 \\x1b[31m\nline 2\\ufffd');
    const value = { name: 'at\ufffd\x1b::x\u202e\x85' };
    const json = jsonText(value);
    assert.doesNotMatch(json, RAW);
    assert.deepEqual(JSON.parse(json), value, 'jsonText must parse back to the same value');
  });

  it('--out with a newline: the one-line error names the whole path, escaped', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'not a directory');
    const r = await luthamAsync(['export', '--backbone', 'none', '--heads', '1', '--widths', '4,2,2', '--grid', '3',
      '--no-progress', '--out', `${file}/x\nbad`]);
    const escaped = `${file}/x\\nbad`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assertOneLine(r, new RegExp(`^lutham: --out ${escaped}: cannot create it \\(Not a directory\\)$`));
  });

  it('inspect escapes a corrupted operator name in text and JSON', async () => {
    const bytes = readFileSync((await smallPtes()).lutham);
    const at = bytes.indexOf(Buffer.from('aten::'));
    assert.ok(at > 0, 'no operator name in the program');
    bytes[at + 2] = 0xff; // not UTF-8: decodes to U+FFFD
    bytes[at + 3] = 0x1b; // ESC
    const pte = join(dir, 'badop.pte');
    writeFileSync(pte, bytes);
    const text = await luthamAsync(['inspect', pte]);
    assert.equal(text.status, 0, text.stderr);
    assert.doesNotMatch(text.stdout, RAW);
    assert.match(text.stdout, /operators \(\d+\): .*at\\ufffd\\x1b::/);
    const json = await luthamAsync(['inspect', '--json', pte]);
    assert.equal(json.status, 0, json.stderr);
    assert.doesNotMatch(json.stdout, RAW);
    const ops: string[] = JSON.parse(json.stdout).plans.flatMap((p: { operators: string[] }) => p.operators);
    assert.ok(ops.some((o) => o.startsWith('at\ufffd\x1b::')), `the JSON keeps the name as read: ${JSON.stringify(ops)}`);
  });

  it('compare and inspect name a path with a newline on one line', async () => {
    const pair = await smallPtes();
    const dense = join(dir, 'dense\nx.pte');
    const lutham = join(dir, 'lutham\u202e.pte');
    copyFileSync(pair.dense, dense);
    copyFileSync(pair.lutham, lutham);
    const c = await luthamAsync(['compare', dense, lutham]);
    assert.equal(c.status, 0, c.stderr);
    assert.doesNotMatch(c.stdout, RAW);
    assert.ok(c.stdout.includes(`Dense:     ${dir}/dense\\nx.pte\n`), c.stdout);
    assert.ok(c.stdout.includes(`SHARe-KAN: ${dir}/lutham\\u202e.pte (`), c.stdout);
    const i = await luthamAsync(['inspect', dense]);
    assert.equal(i.status, 0, i.stderr);
    assert.ok(i.stdout.startsWith(`${dir}/dense\\nx.pte: `), i.stdout.slice(0, 200));
  });
});
