// lutham report: the HTML page is self-contained, its SVG charts are drawn by a real browser
// (headless Debian chromium), and eval -> report works end to end through the CLI on a tiny subset.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { LuthamError } from '../../ts/errors.js';
import { PROJECT_ROOT } from '../../ts/paths.js';
import { EVAL_SECTION, type EvalResults } from '../../ts/lib/eval.js';
import { evalMarkdown, formatEval } from '../../ts/render/eval.js';
import { renderReport } from '../../ts/render/report.js';
import { lutham as runCli } from './helpers/cli.js';
import { fixtureResults } from './helpers/eval-results.js';
import { writeReport } from '../../ts/lib/report.js';

const lutham = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(args, env, 120_000);

const CHROMIUM = ['chromium', '/usr/bin/chromium', 'chromium-browser'].find((c) => spawnSync(c, ['--version'], { encoding: 'utf8' }).status === 0);

function chromium(args: string[], userDataDir: string) {
  return spawnSync(CHROMIUM!, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', `--user-data-dir=${userDataDir}`, ...args,
  ], { encoding: 'utf8', timeout: 50_000, maxBuffer: 1 << 26 });
}

/** Fraction of non-white bytes in the (filtered) pixel rows of an 8-bit RGB(A) PNG. */
function inkFraction(png: Buffer): number {
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
  const idat: Buffer[] = [];
  for (let at = 8; at < png.length;) {
    const len = png.readUInt32BE(at);
    const type = png.subarray(at + 4, at + 8).toString();
    if (type === 'IDAT') idat.push(png.subarray(at + 8, at + 8 + len));
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  let ink = 0;
  for (const b of raw) if (b !== 0 && b !== 255) ink++; // filter bytes and unchanged deltas are 0; white is 255
  return ink / raw.length;
}

describe('lutham report', function () {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'lutham-report-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes one self-contained page with 4 charts per model and report.json beside it', async () => {
    const results = join(dir, 'results.json');
    writeFileSync(results, JSON.stringify(fixtureResults()));
    const r = await writeReport({ out: join(dir, 'out', 'report.html'), results });
    assert.equal(r.charts, 8);
    const html = readFileSync(r.html, 'utf8');
    assert.doesNotMatch(html, /(src|href)\s*=\s*["']?(https?:)?\/\//i, 'the page must not load anything from the network');
    assert.doesNotMatch(html, /<link\b|<img\b|<script\s+src/i);
    for (const id of ['saturation', 'r2', 'pruning', 'baselines']) assert.match(html, new RegExp(`id="m0-pure_kan-${id}"`));
    assert.match(html, /ExecuTorch \(lutham\.pte, LuthamBackend\)/);
    const json = JSON.parse(readFileSync(r.json, 'utf8'));
    assert.deepEqual(json.results, fixtureResults());
    assert.equal(renderReport(fixtureResults()), html);
    assert.match(formatEval(fixtureResults()), /Table 1\.[\s\S]*VQ saturation[\s\S]*Pruning cliff[\s\S]*Baselines/);
  });

  it('evalMarkdown: one section per model, every row of every table, numbers from the results', () => {
    const r = fixtureResults();
    const md = evalMarkdown(r);
    assert.match(md, /^Data: fashion-mnist \(fixture\), 60000 training \/ 10000 test images\./);
    assert.match(md, /\*\*Target\*\* \(pure KAN \(pixels -> KAN 784 -> 64 -> 10\): SHARe-KAN int within 0\.5 points of Dense at >= 12x KAN-layer storage\): \*\*met\*\*\. fixture\./);
    const sections = md.split(/^### /m).slice(1);
    assert.equal(sections.length, 2);
    for (const [i, m] of r.models.entries()) {
      const sec = sections[i];
      assert.ok(sec.startsWith(`${m.label}\n`));
      const tableRows = sec.split('\n').filter((l) => l.startsWith('| ') && !/^\| (method|K|sparsity|---) \|/.test(l));
      assert.equal(tableRows.length, m.table1.length + m.saturation.length + m.pruning.length + 1 + m.baselines.length);
      const [dense, , sk] = m.table1;
      const delta = ((sk.accuracy - dense.accuracy) * 100).toFixed(2);
      assert.ok(sec.includes(`| SHARe-KAN int | ${(sk.accuracy * 100).toFixed(2)} ± ${(sk.se * 100).toFixed(2)} | ${delta} | 145,456 | 2.86 | 18.5x | ExecuTorch (lutham.pte, LuthamBackend) |`), sec);
      assert.ok(sec.includes('| plain k-means (equal bytes) | K=2048 |') || !m.baselines.some((b) => b.equal_bytes && b.method === 'plain k-means'));
    }
    assert.equal(md, evalMarkdown(fixtureResults()), 'same results, same bytes');
  });

  it('headless chromium draws every chart with a size; a screenshot goes to test-results/report.png', function () {
    if (!CHROMIUM) this.skip(); // apt-get install -y chromium (npm run setup does it as root)
    const html = join(dir, 'out', 'report.html');
    const profile = mkdtempSync(join(tmpdir(), 'lutham-chromium-'));
    try {
      const dom = chromium(['--dump-dom', `file://${html}`], profile);
      assert.equal(dom.status, 0, dom.stderr);
      assert.match(dom.stdout, /data-rendered="1"/, 'the page script did not run');
      const charts = [...dom.stdout.matchAll(/<svg class="chart" id="([^"]+)"[^>]*>/g)];
      assert.equal(charts.length, 8);
      for (const [tag, id] of charts) {
        const w = Number(tag.match(/data-rendered-width="(\d+)"/)?.[1]);
        const h = Number(tag.match(/data-rendered-height="(\d+)"/)?.[1]);
        const marks = Number(tag.match(/data-rendered-marks="(\d+)"/)?.[1]);
        assert.ok(w >= 300 && h >= 150, `${id}: rendered ${w}x${h}`);
        assert.ok(marks >= 3, `${id}: ${marks} lines/points`);
      }
      const shotDir = join(PROJECT_ROOT, 'test-results');
      mkdirSync(shotDir, { recursive: true });
      const shot = join(shotDir, 'report.png');
      rmSync(shot, { force: true });
      const s = chromium(['--window-size=1400,2400', '--hide-scrollbars', `--screenshot=${shot}`, `file://${html}`], profile);
      assert.equal(s.status, 0, s.stderr);
      assert.ok(existsSync(shot), 'no screenshot written');
      const ink = inkFraction(readFileSync(shot));
      assert.ok(ink > 0.005, `the screenshot looks blank (${ink})`);
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  });

  it('bad --results is one line on stderr and exit status 1', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"models": 3}');
    const r = lutham(['report', '--results', bad, '--out', join(dir, 'x.html')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^lutham: --results .* is not the output of 'lutham eval --json'\n$/);
    const r2 = lutham(['eval', '--subset', '0']);
    assert.equal(r2.status, 1);
    assert.match(r2.stderr, /^lutham: --subset must be a positive integer, got 0\n$/);
    writeFileSync(join(dir, 'nomarkers.md'), '# no markers\n');
    const r3 = lutham(['eval', '--update', join(dir, 'nomarkers.md')], { LUTHAM_PYTHON: '/nonexistent/python' }); // refused before Python starts
    assert.equal(r3.status, 1);
    assert.match(r3.stderr, /^lutham: .*nomarkers\.md has no '<!-- lutham eval: begin .*' markers\n$/);
  });

  it('eval --json on a tiny subset feeds report end to end', function () {
    this.timeout(120_000);
    const cache = join(dir, 'cache');
    const e = lutham(['eval', '--subset', '120', '--epochs', '1', '--models', 'pure_kan', '--ks', '16', '--sparsities', '0,0.5',
      '--uniform-bits', '4', '--engine', 'eager', '--threads', '2', '--json'], { LUTHAM_CACHE: cache });
    assert.equal(e.status, 0, e.stderr);
    const results = JSON.parse(e.stdout) as EvalResults;
    assert.equal(results.models[0].table1.length, 3);
    assert.ok(existsSync(join(cache, 'fashion_n120_pure_kan_e1_s0.pt')));
    writeFileSync(join(dir, 'tiny.json'), e.stdout);
    const r = lutham(['report', '--results', join(dir, 'tiny.json'), '--out', join(dir, 'tiny', 'report.html'), '--json']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).charts, 4);
    assert.ok(existsSync(join(dir, 'tiny', 'report.json')));
    // --update rewrites only the section between the markers; a file without them is refused before any work.
    const md = join(dir, 'BENCHMARKS.md');
    writeFileSync(md, `# mine\n\n${EVAL_SECTION.begin}\nold\n${EVAL_SECTION.end}\n\nkept\n`);
    const u = lutham(['report', '--results', join(dir, 'tiny.json'), '--out', join(dir, 'tiny2', 'report.html'), '--update', md]);
    assert.equal(u.status, 0, u.stderr);
    assert.equal(readFileSync(md, 'utf8'), `# mine\n\n${EVAL_SECTION.begin}\n${evalMarkdown(results).trim()}\n${EVAL_SECTION.end}\n\nkept\n`);
    writeFileSync(join(dir, 'plain.md'), '# no markers\n');
    const bad = lutham(['report', '--results', join(dir, 'tiny.json'), '--out', join(dir, 'tiny3', 'report.html'), '--update', join(dir, 'plain.md')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^lutham: .*plain\.md has no '<!-- lutham eval: begin .*' markers\n$/);
    assert.ok(!existsSync(join(dir, 'tiny3')), 'nothing written before the refusal');
  });
});

describe('report: refuses outputs it would clobber', () => {
  let dir: string;
  let results: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lutham-report-out-'));
    results = join(dir, 'results.json');
    writeFileSync(results, JSON.stringify(fixtureResults()));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--out an existing directory: one clear error, no temp file left', async () => {
    const target = join(dir, 'adir');
    mkdirSync(target);
    await assert.rejects(writeReport({ out: target, results }), (e: Error) => e instanceof LuthamError && /is a directory; name the HTML file/.test(e.message));
    assert.deepEqual(readdirSync(target), []);
    assert.deepEqual(readdirSync(dir).sort(), ['adir', 'results.json']);
  });

  it("--out into an export's directory does not overwrite its report.json", async () => {
    const exportDir = join(dir, 'export');
    mkdirSync(exportDir);
    const exportReport = JSON.stringify({ model: { heads: 1 }, ratio: { file: 20 } });
    writeFileSync(join(exportDir, 'report.json'), exportReport);
    await assert.rejects(writeReport({ out: join(exportDir, 'report.html'), results }), /report\.json already exists and was not written by 'lutham report'/);
    assert.equal(readFileSync(join(exportDir, 'report.json'), 'utf8'), exportReport);
    assert.deepEqual(readdirSync(exportDir), ['report.json']);
    // A report's own report.json is replaced as before.
    const own = join(dir, 'own');
    const first = await writeReport({ out: join(own, 'report.html'), results });
    const second = await writeReport({ out: join(own, 'report.html'), results });
    assert.deepEqual(second, first);
  });
});
