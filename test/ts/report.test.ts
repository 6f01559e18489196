// lutham report: the HTML page is self-contained, its SVG charts are drawn by a real browser
// (headless Debian chromium), and eval -> report works end to end through the CLI on a tiny subset.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { PROJECT_ROOT } from '../../ts/paths.js';
import { formatEval, type EvalResults, type ModelResults } from '../../ts/lib/eval.js';
import { renderReport, writeReport } from '../../ts/lib/report.js';

function lutham(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'ts', 'cli.ts'), ...args], {
    cwd: PROJECT_ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000,
  });
}

const CHROMIUM = ['chromium', '/usr/bin/chromium', 'chromium-browser'].find((c) => spawnSync(c, ['--version'], { encoding: 'utf8' }).status === 0);

function chromium(args: string[], userDataDir: string) {
  return spawnSync(CHROMIUM!, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', `--user-data-dir=${userDataDir}`, ...args,
  ], { encoding: 'utf8', timeout: 50_000, maxBuffer: 1 << 26 });
}

const se = (a: number, n = 10000) => Math.sqrt((a * (1 - a)) / n);
const row = (accuracy: number, bytes: number, dense: number, edges: number, engine: 'eager' | 'executorch' = 'eager') =>
  ({ accuracy, se: se(accuracy), bytes, bytes_per_edge: bytes / edges, ratio: dense / bytes, engine });

/** Results shaped like `lutham eval --json` (numbers made up; shapes are what matters here). */
export function fixtureResults(): EvalResults {
  const model = (kind: string, label: string, dense: number, acc: number): ModelResults => {
    const edges = 50816;
    const db = 2693312;
    const ks = [16, 64, 256, 1024, 4096, 16384, 50176];
    return {
      kind, label, edges, layer_edges: [50176, 640], dense_bytes: db, engine: 'executorch', engine_note: null,
      table1: [
        { method: 'Dense', ...row(dense, db, db, edges) },
        { method: 'SHARe-KAN fp32', ...row(acc + 0.001, 666392, db, edges, 'executorch'), K: 128 },
        { method: 'SHARe-KAN int', ...row(acc, 145456, db, edges, 'executorch'), K: 128, analytic_bytes: 144592 },
      ],
      saturation: ks.map((K, i) => ({ K, K_layers: [K, Math.min(K, 640)], r2: 0.6 + 0.4 * (i / (ks.length - 1)), r2_layers: [0.6, 1], exact_layers: [false, K >= 640],
        ...row(acc - 0.03 + 0.005 * i, 120000 + 70000 * i, db, edges) })),
      saturation_r2_layer: 0,
      baselines: [
        ...ks.map((K, i) => ({ method: 'plain k-means', setting: `K=${K}`, K, equal_bytes: K === 2048, ...row(acc - 0.12 + 0.02 * i, 60000 + 90000 * i, db, edges) })),
        ...[2, 3, 4, 8].map((b) => ({ method: 'uniform quantization', setting: `${b}-bit coefficients`, bits: b, ...row(acc - 0.2 / b, 150000 * b, db, edges) })),
        { method: 'plain k-means + codebook fine-tune', setting: 'K=2048', K: 2048, equal_bytes: true, ...row(acc - 0.01, 131000, db, edges) },
      ],
      equal_bytes: { budget_bytes: 144592, plain_kmeans_K: 2048, calibration_images: 5000 },
      pruning: [0, 0.1, 0.3, 0.5, 0.7].map((s) => ({ sparsity: s, ...row(dense - s * s * 0.2, db * (1 - s) + 6000, db, edges),
        sharekan: { label: 'SHARe-KAN int K=4096', accuracy: acc + 0.002, se: se(acc), bytes: 400000, ratio: db / 400000 } })),
      training: { kind, epochs: 4, cached: true },
    };
  };
  return {
    lutham_eval: 1,
    dataset: { name: 'fashion-mnist', source: 'fixture', train: 60000, test: 10000, classes: 10, input_shape: [1, 28, 28], notes: [] },
    settings: { codebook_size: 128, gain_bits: 6, bias_bits: 4, base_bits: 5, codebook_bits: 8, seed: 0, subset: null, finetune_codebook: true, threads: 2 },
    models: [model('pure_kan', 'pure KAN (pixels -> KAN 784 -> 64 -> 10)', 0.8764, 0.8758), model('vision_kan', 'Vision KAN (conv backbone + KAN head 784 -> 64 -> 10)', 0.9, 0.899)],
    target: { model: 'pure_kan', dense: 0.8764, sharekan_int: 0.8758, drop_points: 0.06, ratio: 18.5, engine: 'executorch', max_drop_points: 0.5, min_ratio: 12, met: true, text: 'MET: fixture' },
    seconds: 1,
  };
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
  });
});
