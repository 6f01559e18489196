// Results shaped like `lutham eval --json`, shared by the report tests.
import type { EvalResults, ModelResults } from '../../../ts/lib/eval.js';

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
