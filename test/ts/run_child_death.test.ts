// Issue 15.3: when C code aborts the Python child (a corrupted operator name: pybind11 raises
// UnicodeDecodeError -> std::terminate -> SIGABRT), `lutham run` gives the cause in its one line
// and leaves no log file behind. On main: "...(signal SIGABRT); see the messages above" with
// nothing above, and $TMPDIR/lutham-native-XXXX.log left over.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { lutham } from './helpers/cli.js';
import { smallPtes } from './helpers/session.js';

describe('lutham run: the Python child dies in C code', function () {
  this.timeout(600_000);
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'lutham-child-death-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('names the cause in one line and leaves nothing in TMPDIR', async () => {
    const bytes = readFileSync((await smallPtes()).lutham);
    const at = bytes.indexOf(Buffer.from('aten::'));
    assert.ok(at > 0, 'no operator name in the program');
    bytes[at + 2] = 0xff; // not UTF-8: pybind11 cannot make a str of it
    const pte = join(dir, 'badop.pte');
    writeFileSync(pte, bytes);
    const tmp = join(dir, 'tmp');
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    const r = lutham(['run', pte], { TMPDIR: tmp }, 300_000);
    assert.equal(r.status, 1, r.stderr);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^lutham: the Python side exited unexpectedly \(signal SIGABRT\): UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff/);
    assert.doesNotMatch(lines[0], /see the messages above/);
    // (torch keeps its own cache there: torchinductor_<user>)
    assert.deepEqual(readdirSync(tmp).filter((n) => n.startsWith('lutham')), [], 'a lutham file was left in TMPDIR');
  });
});
