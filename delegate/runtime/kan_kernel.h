// LUTHAM KAN kernel: the math of one SHARe-KAN layer, written once.
//
// Semantics (the reference is lutham::kan_linear's eager kernel, py_bridge/lutham/compress/layer.py):
//   y[n][o] = sum_i  base[o][i] * silu(x[n][i])
//                  + gain[o][i] * sum_m B_m(x[n][i]) * codebook[index[o][i]][m]
//                  + bias[o][i] * sum_m B_m(x[n][i])
// with efficient-kan's B-splines (Cox-de Boor, half-open intervals, zero outside the
// extended grid) or FastKAN's Gaussian RBFs. Dense coefficients are never expanded.
//
// How it is fast (schema/lutham.fbs, EdgePanels):
//  - edges are stored in panels of 16 outputs, input-major, one small record per (panel, input);
//    a record is decoded in registers and the weights are streamed once per batch;
//  - per input and sample, the basis is evaluated once, and when the codebook is small
//    against the layer (K <= outputs) the projections P[i][c] = basis(x_i) . codeword_c are
//    tabulated, so an edge costs one table read and three FMAs;
//  - one sample's panels walk the inputs in blocks, so the block's table rows stay in L2 while
//    every panel reads them (lane_input_block);
//  - batches of >= kSampleGroup samples run sample-vectorized (8 samples per vector), so a
//    decoded edge is used by 8 samples at once; smaller batches run lane-vectorized;
//  - work is split into tasks (panels or sample groups) that a thread pool may run in any
//    order and on any number of threads: every output is the same sequence of roundings
//    (a fixed-order fma chain over its inputs), so results are bit-identical across thread
//    counts, across the ISA variants (generic, AVX2, AVX-512) and across x86-64 and aarch64.
//  - the opt-in int8 mode (below) is three exact int32 dot products per output (vpdpbusd on
//    AVX-512 VNNI, sdot on aarch64), the same bits everywhere by construction.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lutham {

// Int8 compute mode (opt-in per layer, schema KanLayer.compute = Int8; see kan_int_prepare):
//   table    T[i][c] = clamp((P16 + 128) >> 8, -128, 127) + 128   (u8), where
//            P16 = wrap16(sum over pairs p of sat16(B8[2p] cq[c][s+2p] + B8[2p+1] cq[c][s+2p+1])),
//            B8[r] = min(255, rne(B_{s+r}(x_i) * 256)) (the k+1 window values of x_i, start s,
//            from bspline_window_q8: Cox-de Boor with reciprocal knot differences),
//            cq the codebook requantized to one scale (codebook_scale);
//   bsum8[i] = min(255, rne(bsum_i * 255));  silu8[i] = rne((silu_i - lo) * 255 / (hi - lo)),
//            lo/hi = min/max over the sample's inputs of silu_q8 (a float-only exp, kan_silu_q8);
//   per output o, in exact (wrapping) int32:
//            Ag = sum_i qg[o][i] * T[i][index[o][i]] - 128 * gain_sum[o],
//            Ab = sum_i qb[o][i] * bsum8[i],  Aw = sum_i qw[o][i] * silu8[i];
//   y[o] = (gain_scale[o] * Ag + bias_scale[o] * Ab) + base.scales[o] * (sx * Aw + lo * base_sum[o])
//            with sx = (hi - lo) / 255, each product and sum one float32 rounding (no fma, so the
//            numpy reference, py_bridge/lutham/compress/int8.py, gives the same bits).
// The integer sums are the same on every ISA by construction; the float parts are fixed-order
// IEEE operations. A sample with a non-finite input gives NaN outputs.
enum class Compute : uint32_t { Float = 0, Int8 = 1 };
// Int8 mode limits: K (one byte per index, a 256-entry table row), inputs per layer (the int32
// sums cannot overflow below this), and the B-spline basis only (its values sum to <= 1).
constexpr uint32_t kInt8MaxCodebook = 256;
constexpr uint32_t kInt8MaxInputs = 65536;

// Largest spline order the kernel accepts (bounds a small stack array).
constexpr uint32_t kMaxSplineOrder = 15;
// Outputs per panel (EdgePanels.width).
constexpr uint32_t kPanelWidth = 16;
// Samples per vector of the sample-vectorized path; batches of at least this many use it.
constexpr uint32_t kSampleGroup = 8;

enum class Basis : uint32_t { BSpline = 0, GaussianRBF = 1 };

// A row-major rows x cols matrix: float32 values (bits == 32) or `bits`-bit signed
// integers packed LSB-first with one float scale per row. Used for the codebook.
struct QuantView {
  uint32_t rows = 0;
  uint32_t cols = 0;
  uint32_t bits = 32;
  const float* f32 = nullptr;
  const uint8_t* packed = nullptr;
  const float* scales = nullptr;
};

// One per-edge value stored in the panels: bits 2..8 (scales: one per padded output) or 32.
struct EdgeValuesView {
  uint32_t bits = 32;
  const float* scales = nullptr;
};

// What the int8 mode derives from a layer once (kan_int8_prepare), in memory the caller owns.
struct KanInt8View {
  float codebook_scale = 0.0f;         // max |codeword value| / int8_codebook_qmax(order)
  const int8_t* codebook = nullptr;     // K x dim: clamp(rne(value / codebook_scale), +-qmax)
  const int8_t* windows = nullptr;      // [start][pair][table_stride][2]: cq[c][start+2p], cq[c][start+2p+1] (0 past dim)
  const int32_t* gain_sum = nullptr;    // per panel-padded output: sum over inputs of the gain ints
  const int32_t* base_sum = nullptr;    // the same for the base weights
  const int32_t* bias_sum = nullptr;    // and the biases (for kernels that offset bsum8 to signed bytes)
  const float* gain_scale = nullptr;    // gain.scales[o] * codebook_scale
  const float* bias_scale = nullptr;    // bias.scales[o] / 255
  const float* knot_inv = nullptr;      // [input or 0][p - 1][n_knots]: 1 / (t[m + p] - t[m]) (0 past the row)
  uint32_t table_stride = 0;            // bytes per table row: K rounded up to 32, 64, 128 or 256
  uint32_t pairs = 0;                   // ceil((order + 1) / 2)
};

// One validated layer. All pointers stay owned by the payload / codebook buffers.
struct KanLayerView {
  uint32_t in_features = 0;
  uint32_t out_features = 0;
  uint32_t panels = 0;  // ceil(out_features / kPanelWidth)
  Basis basis = Basis::BSpline;
  uint32_t grid_size = 0;
  uint32_t spline_order = 0;     // 0 for GaussianRBF
  const float* knots = nullptr;  // in x n_knots, or one row shared by all inputs
  uint32_t n_knots = 0;          // B-spline: G + 2k + 1; RBF: G (the centers)
  uint32_t knot_stride = 0;      // floats from one input's knots to the next's: n_knots, or 0 if shared
  float rbf_denominator = 0.0f;
  uint32_t codebook_size = 0;  // K
  uint32_t codebook_dim = 0;   // B-spline: G + k; RBF: G
  uint32_t index_bits = 0;
  const uint8_t* edges = nullptr;  // panels * in_features records (group 4: panels * ceil(in / 4))
  uint32_t record_bytes = 0;
  uint32_t group = 1;  // inputs per record: 1, or 4 (the int8 mode's [lane][input] byte planes)
  uint32_t index_bytes = 1;  // 1 or 2
  uint32_t word_bytes = 2;   // 2 or 4 for integer values; 0 for float32 values
  EdgeValuesView gain, bias, base;
  QuantView codebook;                       // K x dim as stored in the named data
  const float* codebook_columns = nullptr;  // dim x K float32 (dequantized, transposed): see dequantize_columns
  Compute compute = Compute::Float;
  KanInt8View int8;  // Compute::Int8: filled by kan_int8_prepare (after codebook_columns is set)
};

// Largest |requantized codeword value| of the int8 mode for spline order k: the pair sums of
// the table can then never leave int16 (B8 sums to at most 256 + (k+1)/2).
inline int32_t int8_codebook_qmax(uint32_t order) {
  const int32_t q = 32767 / static_cast<int32_t>(256 + (order + 1) / 2);
  return q < 127 ? q : 127;
}

// Why a layer cannot run in the int8 mode (nullptr: it can): RBF basis, float values, K or
// the inputs above the limits, 16-bit indices.
const char* int8_unsupported(const KanLayerView& layer);

// Bytes kan_int8_prepare needs, and the preparation itself: fills layer->int8 with pointers
// into `memory` (64-aligned, kan_int8_bytes(*layer) bytes). Needs codebook_columns.
size_t kan_int8_bytes(const KanLayerView& layer);
void kan_int8_prepare(KanLayerView* layer, void* memory);

// The int8 mode's silu, x / (1 + e^-x) with e^v from a fixed float-only (mul/add, no fma)
// polynomial, so every ISA and numpy compute the same bits.
float kan_silu_q8(float x);

// Number of basis values evaluated per input: k + 1 (B-spline window) or G (RBF).
uint32_t basis_width(const KanLayerView& layer);

// The codebook as dim x K float32 (codeword c's value m at [m * K + c]), dequantized as
// ops.dequantize does (q * scale[c]). `out` holds codebook.rows * codebook.cols floats.
void dequantize_columns(const QuantView& codebook, float* out);

// Bit-field reader (LSB-first stream) for the codebook's packed ints. Callers guarantee the bytes.
inline int32_t read_signed_bits(const uint8_t* p, uint64_t n, uint32_t bits) {
  const uint64_t bit = n * bits;
  const uint64_t byte = bit >> 3;
  const uint32_t shift = static_cast<uint32_t>(bit & 7);
  uint32_t v = p[byte];
  if (shift + bits > 8) v |= static_cast<uint32_t>(p[byte + 1]) << 8;
  v = (v >> shift) & ((1u << bits) - 1u);
  const uint32_t sign = 1u << (bits - 1);
  return static_cast<int32_t>(v ^ sign) - static_cast<int32_t>(sign);
}

// The k+1 non-zero B-spline bases of one input, in efficient-kan's arithmetic.
// knots: n_knots strictly increasing values. On return, values[r] = B_{start+r}(x) for
// r = 0..k, where start is in [0, n_knots - 2k - 2] (= [0, G-1]) so the window always lies
// inside the G+k bases; returns the sum of the values (0 outside the extended grid,
// where every value is 0 and start is 0).
float bspline_window(const float* knots, uint32_t n_knots, uint32_t order, float x, float* values, uint32_t* start);

// The two phases of kan_forward_prepared: the bases and silu of every input (skipped when
// the prepared data is reused), then per task the coefficient tables and the edge stream.
enum class KanPhase { Basis, TablesAndEdges };

// Runs tasks 0..n_tasks-1, each exactly once, in any order, possibly concurrently.
struct TaskRunner {
  void* context = nullptr;
  void (*run)(void* context, int64_t n_tasks, void* job, void (*task)(void* job, int64_t index)) = nullptr;
  uint32_t threads = 1;  // how many tasks may run at once (a hint for splitting work)
  // Optional: called before (begin = true) and after each phase of kan_forward_prepared
  // (profiling: LuthamBackend logs them to ExecuTorch's event tracer). nullptr: not called.
  void (*on_phase)(void* observer, KanPhase phase, bool begin) = nullptr;
  void* observer = nullptr;
};

// Bytes of scratch kan_forward needs for this layer, batch and runner->threads (the work
// split depends on it; the results do not).
size_t kan_scratch_bytes(const KanLayerView& layer, size_t batch = 1, uint32_t threads = 1);

// y (batch x out) = layer(x (batch x in)). scratch: kan_scratch_bytes(layer, batch,
// runner ? runner->threads : 1) bytes, 16-aligned. runner: nullptr runs everything on the
// calling thread.
void kan_forward(const KanLayerView& layer, const float* x, size_t batch, float* y, void* scratch,
                 const TaskRunner* runner = nullptr);

// The same computation in two buffers, so that layers reading the same input can share the
// first half (bases, silu; the coefficient tables are built per task): `prepared` (kan_prepared_bytes) and `work`
// (kan_work_bytes), both 16-aligned. With reuse_prepared, `prepared` must hold what an earlier
// call computed for the same x and batch with a layer for which kan_same_preparation is true
// (the 50 heads of a model on one backbone: their first layers share input, grid and codebook).
size_t kan_prepared_bytes(const KanLayerView& layer, size_t batch);
size_t kan_work_bytes(const KanLayerView& layer, size_t batch, uint32_t threads);
bool kan_same_preparation(const KanLayerView& a, const KanLayerView& b, size_t batch);
void kan_forward_prepared(const KanLayerView& layer, const float* x, size_t batch, float* y, void* prepared,
                          bool reuse_prepared, void* work, const TaskRunner* runner);

// Which implementation kan_forward uses: "avx2" or "generic". LUTHAM_ISA=NAME forces a
// variant this CPU can run (the tests compare all of them bit for bit).
const char* kan_isa();

// The kernel variants of this build, best first: name, whether this CPU can run it, and if
// not, which of the CPU flags it needs this CPU lacks.
struct KernelIsa {
  const char* name;
  bool runnable;
  const char* needs;  // the missing CPU flags (lscpu names), space-separated; "" when runnable
};
size_t kan_isa_variants(KernelIsa* out, size_t capacity);

// Makes later kan_forward calls use the named variant; false (and no change) when this build
// has no such variant or the CPU cannot run it. For tests and benchmarks.
bool kan_force_isa(const char* name);

}  // namespace lutham
