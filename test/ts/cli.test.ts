// The CLI shell (ts/cli.ts): help without Python, flag mistakes as one line without Python.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { assertOneLine, HANG_GUARD_MS, lutham, luthamAsync } from './helpers/cli.js';

describe('cli: the command shell', function () {
  this.timeout(HANG_GUARD_MS);
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'lutham-cli-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--help lists export and does not start Python', () => {
    // An interpreter that leaves a mark if anything runs it.
    const marker = join(dir, 'python-started');
    const fake = join(dir, 'fake-python');
    writeFileSync(fake, `#!/bin/sh\ntouch ${marker}\nexit 1\n`);
    chmodSync(fake, 0o755);
    const r = lutham(['--help'], { LUTHAM_PYTHON: fake });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /lutham export/);
    const r2 = lutham(['export', '--help'], { LUTHAM_PYTHON: fake });
    assert.equal(r2.status, 0);
    assert.match(r2.stdout, /--codebook-size/);
    assert.equal(existsSync(marker), false, 'Python was started for --help');
  });

  it('flag mistakes are one line without starting Python', async () => {
    const noPython = { LUTHAM_PYTHON: '/nonexistent/python' }; // any start would fail differently
    const TINY = ['--backbone', 'none', '--heads', '2', '--widths', '16,4', '--grid', '4', '--codebook-size', '8', '--no-progress'];
    const cases: [string[], RegExp][] = [
      [['export', '--widths', '8,4', '--widths', '4,2'], /^lutham: --widths was given 2 times; give it once$/],
      [['export', '--backbone', 'vgg'], /^lutham: Invalid values: Argument: backbone, Given: "vgg", Choices: .*"none"$/],
      [['export', '--out', ''], /^lutham: --out must name a directory, got ''$/],
      [['export', ...TINY, '--fp32', '--gain-bits', '3'], /^lutham: --gain-bits cannot be used with --fp32/],
      [['run', 'x.pte', '--seed', '1', '--seed', '2'], /^lutham: --seed was given 2 times/],
      [['report', '--out', 'a.html', '--out', 'b.html'], /^lutham: --out was given 2 times/],
      // Terminal escapes and newlines in what the message echoes are escaped, never sent raw.
      [['run', '/nonexistent/x\x1b[2J\ny.pte'], /^lutham: cannot open \/nonexistent\/x\\x1b\[2J\\ny\.pte: no such file$/],
    ];
    const runs = await Promise.all(cases.map(([args]) => luthamAsync(args, noPython)));
    cases.forEach(([, re], i) => assertOneLine(runs[i], re));
  });
});
