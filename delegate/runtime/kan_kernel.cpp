// LUTHAM KAN kernel: planning, bases, threading and ISA dispatch. See kan_kernel.h for the
// semantics and the design; the hot loops are in kan_kernel_impl.h.
//
// Built with -ffp-contract=off so that the basis values are computed with exactly the
// roundings of efficient-kan's tensor ops (mul, mul, add) on every target, and x86-64 and
// aarch64 builds give the same bits.
#include "kan_kernel.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kan_kernel_plan.h"

#if defined(__aarch64__) && defined(LUTHAM_HAVE_NEONDOT)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

namespace lutham {
namespace {

inline size_t align16(size_t n) { return (n + 15) & ~static_cast<size_t>(15); }

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

// Tabulate the coefficient term when the table costs no more than computing each edge's
// term directly: in*K*width fmas, 8 per vector, against in*out*width (panel-padded) gathered
// loads, each costing several vector fmas' worth of issue slots; so tabulate up to 4x the
// padded outputs (the 512 -> 25 second layer of a head with K = 128 measured ~3% faster
// that way). The sample path builds its table 8 samples per vector and would gather per
// sample otherwise, so it tabulates up to 8x larger codebooks.
inline bool use_table(const KanLayerView& L, bool sample) {
  return L.codebook_size <= L.panels * kPanelWidth * (sample ? kSampleGroup : 4);
}

inline bool sample_path(size_t batch) { return batch >= kSampleGroup; }

// FastKAN's Gaussian RBFs: all G values; returns their sum. efficient arithmetic of
// torch.exp(-((x - c) / h) ** 2): sub, div, square, negate, exp.
float rbf_window(const float* centers, uint32_t G, float h, float x, float* values) {
  float sum = 0.0f;
  for (uint32_t m = 0; m < G; ++m) {
    const float t = (x - centers[m]) / h;
    values[m] = std::exp(-(t * t));
    sum += values[m];
  }
  return sum;
}

struct Variant {
  const char* name;
  const KernelOps& (*ops)();
  bool (*runnable)();
  const char* needs;  // CPU flags (lscpu names)
};

#if defined(__x86_64__) && defined(LUTHAM_HAVE_AVX2)
bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#endif
#if defined(__x86_64__) && defined(LUTHAM_HAVE_AVX2) && defined(LUTHAM_HAVE_AVX512)
// The AVX-512 variant reuses the AVX2 one's B-spline and sample loops, hence avx2 too.
bool cpu_has_avx512() {
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
#endif
#if defined(__x86_64__) && defined(LUTHAM_HAVE_AVX2) && defined(LUTHAM_HAVE_AVX512) && defined(LUTHAM_HAVE_AVX512VNNI)
// The int8 mode's AVX-512 loops: vpermi2b table rows (VBMI), vpdpbusd (VNNI), field decode
// with vgf2p8affineqb (GFNI); its float loops are the avx512 variant's.
bool cpu_has_avx512vnni() {
  return cpu_has_avx512() && __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni") &&
         __builtin_cpu_supports("gfni");
}
#endif
#if defined(__aarch64__) && defined(LUTHAM_HAVE_NEONDOT)
// The int8 mode's NEON loops need the dot-product instructions (ARMv8.2 asimddp).
bool cpu_has_neondot() { return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0; }
#endif
bool always() { return true; }

// Best first; the first runnable one is the default.
const Variant kVariants[] = {
#if defined(__x86_64__) && defined(LUTHAM_HAVE_AVX2) && defined(LUTHAM_HAVE_AVX512) && defined(LUTHAM_HAVE_AVX512VNNI)
    {"avx512vnni", &avx512vnni::ops, &cpu_has_avx512vnni, "avx2 fma avx512f avx512bw avx512vl avx512vbmi avx512_vnni gfni"},
#endif
#if defined(__x86_64__) && defined(LUTHAM_HAVE_AVX2) && defined(LUTHAM_HAVE_AVX512)
    {"avx512", &avx512::ops, &cpu_has_avx512, "avx2 fma avx512f avx512bw avx512vl"},
#endif
#if defined(__x86_64__) && defined(LUTHAM_HAVE_AVX2)
    {"avx2", &avx2::ops, &cpu_has_avx2, "avx2 fma"},
#endif
#if defined(__aarch64__) && defined(LUTHAM_HAVE_NEONDOT)
    {"neondot", &neondot::ops, &cpu_has_neondot, "asimddp"},
#endif
    {"generic", &generic::ops, &always, ""},
};

// Whether this CPU has one of the flags a variant needs (lscpu names).
bool cpu_flag(const std::string& flag) {
#if defined(__x86_64__)
  if (flag == "avx2") return __builtin_cpu_supports("avx2");
  if (flag == "fma") return __builtin_cpu_supports("fma");
  if (flag == "avx512f") return __builtin_cpu_supports("avx512f");
  if (flag == "avx512bw") return __builtin_cpu_supports("avx512bw");
  if (flag == "avx512vl") return __builtin_cpu_supports("avx512vl");
  if (flag == "avx512vbmi") return __builtin_cpu_supports("avx512vbmi");
  if (flag == "avx512_vnni") return __builtin_cpu_supports("avx512vnni");
  if (flag == "gfni") return __builtin_cpu_supports("gfni");
#endif
#if defined(__aarch64__) && defined(LUTHAM_HAVE_NEONDOT)
  if (flag == "asimddp") return cpu_has_neondot();
#endif
  return false;
}

// The flags of `needs` this CPU lacks, space-separated.
std::string missing_flags(const char* needs) {
  std::string missing, flag;
  for (const char* p = needs;; ++p) {
    if (*p == ' ' || *p == '\0') {
      if (!flag.empty() && !cpu_flag(flag)) missing += (missing.empty() ? "" : " ") + flag;
      flag.clear();
      if (*p == '\0') break;
    } else {
      flag += *p;
    }
  }
  return missing;
}

const Variant* find_variant(const char* name) {
  for (const Variant& v : kVariants)
    if (std::strcmp(v.name, name) == 0) return &v;
  return nullptr;
}

const Variant* choose_variant() {
  if (const char* forced = std::getenv("LUTHAM_ISA")) {
    const Variant* v = find_variant(forced);
    if (v != nullptr && v->runnable()) return v;
  }
  for (const Variant& v : kVariants)
    if (v.runnable()) return &v;
  return &kVariants[sizeof kVariants / sizeof kVariants[0] - 1];
}

std::atomic<const Variant*>& current_variant() {
  static std::atomic<const Variant*> v{choose_variant()};
  return v;
}

const KernelOps& kernel_ops() { return current_variant().load(std::memory_order_relaxed)->ops(); }

// Where each piece of a call's scratch lives (offsets in bytes). The prepared region (phase
// A's results: bases, silu, coefficient table) depends only on the inputs and the layer's
// basis and codebook, so layers that share those can share it; the work region holds the
// sample path's per-task buffers.
struct Layout {
  bool sample = false;
  bool table = false;
  size_t rows = 0;  // (padded) samples x inputs
  size_t groups = 0;
  uint32_t ranges = 1;  // panel ranges per sample (lane) or per group (sample)
  uint32_t panels_per_range = 1;
  size_t basis = 0, start = 0, silu = 0, bsum = 0, prepared_total = 0;  // in `prepared`
  size_t task_floats = 0, work_total = 0;                                                // in `work`
};

Layout plan(const KanLayerView& L, size_t batch, uint32_t threads) {
  Layout s;
  const size_t in = L.in_features, width = basis_width(L);
  threads = std::max<uint32_t>(1, threads);
  s.sample = sample_path(batch);
  s.table = use_table(L, s.sample);
  const size_t samples = s.sample ? (batch + kSampleGroup - 1) / kSampleGroup * kSampleGroup : batch;
  s.rows = samples * in;
  s.groups = samples / kSampleGroup;
  if (s.sample) {
    // Whole groups per task when there are enough of them; otherwise split the panels too.
    s.ranges = static_cast<uint32_t>(std::min<size_t>(L.panels, std::max<size_t>(1, (threads + s.groups - 1) / s.groups)));
  } else if (s.table) {
    // Each task builds the table blocks of its sample (lane_table_floats), so split the
    // panels only as far as the threads need: the table is built once per task.
    s.ranges = static_cast<uint32_t>(std::min<size_t>(L.panels, std::max<size_t>(1, (threads + batch - 1) / batch)));
  } else {
    s.ranges = std::min<uint32_t>(L.panels, 2 * threads);
  }
  s.panels_per_range = (L.panels + s.ranges - 1) / s.ranges;
  s.ranges = (L.panels + s.panels_per_range - 1) / s.panels_per_range;
  size_t off = 0;
  auto take = [&off](size_t bytes) {
    const size_t at = off;
    off += align16(bytes);
    return at;
  };
  s.basis = take(s.rows * width * sizeof(float));
  s.start = take(s.rows * sizeof(uint32_t));
  s.silu = take(s.rows * sizeof(float));
  s.bsum = take(s.rows * sizeof(float));
  s.prepared_total = off;
  if (s.sample) {
    s.task_floats = align16(sample_task_floats(L, s.panels_per_range, s.table) * sizeof(float)) / sizeof(float);
    s.work_total = s.groups * s.ranges * s.task_floats * sizeof(float);
  } else if (s.table) {
    s.task_floats = align16(lane_table_floats(L) * sizeof(float)) / sizeof(float);
    s.work_total = batch * s.ranges * s.task_floats * sizeof(float);
  }
  return s;
}

struct Call {
  const KanLayerView* L;
  const KernelOps* ops;
  const Layout* s;
  const float* x;
  float* y;
  size_t batch;
  uint8_t* prepared;
  float* work;
  template <typename T>
  T* at(size_t offset) const {
    return reinterpret_cast<T*>(prepared + offset);
  }
};

constexpr size_t kRowsPerTask = 256;

// Phase A, rows [r0, r1) of (sample, input): silu, basis window, its start and sum (the
// coefficient tables are built by the phase-B tasks, block by block).
void prepare_rows(const Call& c, size_t r0, size_t r1) {
  const KanLayerView& L = *c.L;
  const Layout& s = *c.s;
  const size_t in = L.in_features;
  const uint32_t width = basis_width(L);
  float* basis = c.at<float>(s.basis);
  uint32_t* start = c.at<uint32_t>(s.start);
  float* silu_out = c.at<float>(s.silu);
  float* bsum_out = c.at<float>(s.bsum);
  // Shared knots: the B-spline windows of 8 consecutive rows at once (bspline8), for rows of
  // real samples; the loop below then takes them from these buffers.
  const bool by8 = L.basis == Basis::BSpline && L.knot_stride == 0;
  float sums8[8];
  uint32_t starts8[8];
  size_t block8 = r0;  // rows [block8, block8 + 8) are in sums8 / starts8 / basis when ready8
  bool ready8 = false;
  // (n, i) of row r, stepped along (a 64-bit division per row cost more than its basis).
  size_t n = r0 / in, i = r0 % in;
  for (size_t r = r0; r < r1; ++r, i = i + 1 == in ? (++n, 0) : i + 1) {
    float* b = basis + r * width;
    float sv = 0.0f, bsum = 0.0f;
    uint32_t st = 0;
    if (by8 && (r - r0) % 8 == 0) {
      block8 = r;
      ready8 = r + 8 <= r1 && r + 8 <= c.batch * in;
      if (ready8) c.ops->bspline8(L.knots, L.n_knots, L.spline_order, c.x + r, b, starts8, sums8);
    }
    if (ready8) {
      sv = silu(c.x[r]);
      bsum = sums8[r - block8];
      st = starts8[r - block8];
    } else if (n < c.batch) {
      const float xv = c.x[r];
      sv = silu(xv);
      const float* knots = L.knots + i * L.knot_stride;
      if (L.basis == Basis::GaussianRBF) {
        bsum = rbf_window(knots, L.grid_size, L.rbf_denominator, xv, b);
      } else {
        bsum = bspline_window(knots, L.n_knots, L.spline_order, xv, b, &st);
      }
    } else {
      std::fill(b, b + width, 0.0f);  // padding samples of the last group contribute nothing
    }
    start[r] = st;
    if (s.sample) {
      const size_t slot = ((n / kSampleGroup) * in + i) * kSampleGroup + n % kSampleGroup;
      silu_out[slot] = sv;
      bsum_out[slot] = bsum;
    } else {
      silu_out[r] = sv;
      bsum_out[r] = bsum;
    }
  }
}

void phase_a_task(void* job, int64_t t) {
  const Call& c = *static_cast<const Call*>(job);
  const size_t r0 = static_cast<size_t>(t) * kRowsPerTask;
  prepare_rows(c, r0, std::min(c.s->rows, r0 + kRowsPerTask));
}

void phase_b_task(void* job, int64_t t) {
  const Call& c = *static_cast<const Call*>(job);
  const KanLayerView& L = *c.L;
  const Layout& s = *c.s;
  const size_t unit = static_cast<size_t>(t) / s.ranges;  // sample (lane path) or group
  const uint32_t range = static_cast<uint32_t>(t % s.ranges);
  const uint32_t p0 = range * s.panels_per_range, p1 = std::min(L.panels, p0 + s.panels_per_range);
  const size_t in = L.in_features;
  if (s.sample) {
    SamplePlan plan;
    plan.silu_t = c.at<float>(s.silu);
    plan.bsum_t = c.at<float>(s.bsum);
    plan.basis = c.at<float>(s.basis);
    plan.start = c.at<uint32_t>(s.start);
    plan.input_block = sample_input_block(L);
    float* task_scratch = c.work + static_cast<size_t>(t) * s.task_floats;
    c.ops->sample(L, s.table, plan, static_cast<uint32_t>(unit), p0, p1, task_scratch, c.y, c.batch);
  } else {
    const size_t n = unit, width = basis_width(L);
    c.ops->lane(L, s.table, c.at<float>(s.silu) + n * in, c.at<float>(s.bsum) + n * in,
                c.at<float>(s.basis) + n * in * width, c.at<uint32_t>(s.start) + n * in,
                s.table ? c.work + static_cast<size_t>(t) * s.task_floats : nullptr, p0, p1,
                c.y + n * L.out_features);
  }
}

// ---- Int8 mode (kan_kernel.h). Phase A: silu, B8 windows, starts and bsum8 of every row
// and, on the lane path, the table rows; phase B: per task the sample's silu8, then the edge
// stream (the batch path builds its tables block by block, for its group of samples).
constexpr size_t kInt8BatchMin = 4;  // batches from this size share each decoded record
constexpr uint32_t kInt8GroupMax = 32;  // samples per batch task at most

struct Int8Layout {
  bool batch_path = false;
  size_t rows = 0;
  uint32_t in4 = 0, b8_width = 0;
  uint32_t group_samples = 1;  // batch path: samples per task
  size_t groups = 0;           // batch path: sample groups
  uint32_t ranges = 1, panels_per_range = 1;
  size_t silu = 0, b8 = 0, start = 0, bsum8 = 0, table = 0, prepared_total = 0;  // in `prepared`
  size_t task_bytes = 0, work_total = 0;                                       // in `work`
};

Int8Layout plan_int8(const KanLayerView& L, size_t batch, uint32_t threads) {
  Int8Layout s;
  threads = std::max<uint32_t>(1, threads);
  s.batch_path = batch >= kInt8BatchMin;
  s.rows = batch * L.in_features;
  s.in4 = int8_padded_inputs(L);
  s.b8_width = 2 * L.int8.pairs;
  size_t units = batch;
  if (s.batch_path) {
    s.group_samples = static_cast<uint32_t>(std::min<size_t>(kInt8GroupMax, (batch + threads - 1) / threads));
    s.groups = (batch + s.group_samples - 1) / s.group_samples;
    units = s.groups;
  }
  s.ranges = static_cast<uint32_t>(std::min<size_t>(L.panels, std::max<size_t>(1, (threads + units - 1) / units)));
  s.panels_per_range = (L.panels + s.ranges - 1) / s.ranges;
  s.ranges = (L.panels + s.panels_per_range - 1) / s.panels_per_range;
  size_t off = 0;
  auto take = [&off](size_t bytes) {
    const size_t at = off;
    off += (bytes + 63) & ~static_cast<size_t>(63);
    return at;
  };
  s.silu = take(s.rows * sizeof(float));
  s.b8 = take(s.rows * s.b8_width);
  s.start = take(s.rows * sizeof(uint32_t));
  s.bsum8 = take(batch * s.in4);
  if (!s.batch_path) s.table = take(batch * s.in4 * L.int8.table_stride + 64);
  s.prepared_total = off;
  if (s.batch_path) {
    s.task_bytes = (static_cast<size_t>(s.group_samples) * (s.in4 + 2 * sizeof(float)) +
                    int8_batch_scratch_bytes(L, s.group_samples, s.panels_per_range) + 127) & ~static_cast<size_t>(63);
    s.work_total = s.groups * s.ranges * s.task_bytes;
  } else {
    s.task_bytes = (s.in4 + 63) & ~static_cast<size_t>(63);
    s.work_total = batch * s.ranges * s.task_bytes;
  }
  return s;
}

struct Int8Call {
  const KanLayerView* L;
  const KernelOps* ops;
  const Int8Layout* s;
  const float* x;
  float* y;
  size_t batch;
  uint8_t* prepared;
  uint8_t* work;
  template <typename T>
  T* at(size_t offset) const {
    return reinterpret_cast<T*>(prepared + offset);
  }
};

// Phase A of the int8 mode, rows [r0, r1) of (sample, input).
void prepare_rows_int8(const Int8Call& c, size_t r0, size_t r1) {
  const KanLayerView& L = *c.L;
  const Int8Layout& s = *c.s;
  const size_t in = L.in_features;
  uint8_t* b8 = c.at<uint8_t>(s.b8);
  uint32_t* start = c.at<uint32_t>(s.start);
  uint8_t* bsum8 = c.at<uint8_t>(s.bsum8);
  c.ops->int8_rows(L, c.x, r0, r1, c.at<float>(s.silu), b8, start, bsum8);
  // The padding of each sample's bsum8, by the task that has the sample's last row.
  if (s.in4 > in)
    for (size_t n = r0 / in; n * in < r1; ++n)
      if ((n + 1) * in - 1 >= r0 && (n + 1) * in - 1 < r1) std::memset(bsum8 + n * s.in4 + in, 0, s.in4 - in);
  if (!s.batch_path) {
    uint8_t* table = c.at<uint8_t>(s.table);
    for (size_t r = r0; r < r1;) {
      const size_t n = r / in, i = r % in, run = std::min(r1 - r, in - i);
      c.ops->int8_table(L, b8 + r * s.b8_width, start + r, run, static_cast<uint32_t>(i),
                        table + n * s.in4 * L.int8.table_stride);
      r += run;
    }
  }
}

void int8_phase_a_task(void* job, int64_t t) {
  const Int8Call& c = *static_cast<const Int8Call*>(job);
  const size_t r0 = static_cast<size_t>(t) * kRowsPerTask;
  prepare_rows_int8(c, r0, std::min(c.s->rows, r0 + kRowsPerTask));
}

void int8_phase_b_task(void* job, int64_t t) {
  const Int8Call& c = *static_cast<const Int8Call*>(job);
  const KanLayerView& L = *c.L;
  const Int8Layout& s = *c.s;
  const size_t unit = static_cast<size_t>(t) / s.ranges;
  const uint32_t range = static_cast<uint32_t>(t % s.ranges);
  const uint32_t p0 = range * s.panels_per_range, p1 = std::min(L.panels, p0 + s.panels_per_range);
  const size_t in = L.in_features;
  uint8_t* mine = c.work + static_cast<size_t>(t) * s.task_bytes;
  if (!s.batch_path) {
    const size_t n = unit;
    Int8Sample S;
    c.ops->int8_quantize(c.at<float>(s.silu) + n * in, L.in_features, mine, &S.lo, &S.sx);
    S.silu8 = mine;
    S.bsum8 = c.at<uint8_t>(s.bsum8) + n * s.in4;
    S.table = c.at<uint8_t>(s.table) + n * s.in4 * L.int8.table_stride;
    c.ops->int8_lane(L, S, p0, p1, c.y + n * L.out_features);
    return;
  }
  const size_t n0 = unit * s.group_samples;
  const uint32_t samples = static_cast<uint32_t>(std::min<size_t>(s.group_samples, c.batch - n0));
  uint8_t* silu8 = mine;
  float* lo = reinterpret_cast<float*>(silu8 + static_cast<size_t>(s.group_samples) * s.in4);
  float* sx = lo + s.group_samples;
  uint8_t* scratch = reinterpret_cast<uint8_t*>(sx + s.group_samples);
  scratch += (64 - reinterpret_cast<uintptr_t>(scratch) % 64) % 64;
  for (uint32_t q = 0; q < samples; ++q)
    c.ops->int8_quantize(c.at<float>(s.silu) + (n0 + q) * in, L.in_features, silu8 + static_cast<size_t>(q) * s.in4, lo + q, sx + q);
  Int8Batch B;
  B.b8 = c.at<uint8_t>(s.b8) + n0 * in * s.b8_width;
  B.start = c.at<uint32_t>(s.start) + n0 * in;
  B.bsum8 = c.at<uint8_t>(s.bsum8) + n0 * s.in4;
  B.silu8 = silu8;
  B.lo = lo;
  B.sx = sx;
  B.samples = samples;
  c.ops->int8_batch(L, B, p0, p1, scratch, c.y + n0 * L.out_features);
}

void run_tasks(const TaskRunner* runner, int64_t n, void* job, void (*task)(void*, int64_t));

void forward_int8(const KanLayerView& layer, const float* x, size_t batch, float* y, void* prepared,
                  bool reuse_prepared, void* work, const TaskRunner* runner) {
  const uint32_t threads = runner != nullptr ? std::max<uint32_t>(1, runner->threads) : 1;
  const Int8Layout s = plan_int8(layer, batch, threads);
  Int8Call call{&layer, &kernel_ops(), &s, x, y, batch, static_cast<uint8_t*>(prepared), static_cast<uint8_t*>(work)};
  const bool observed = runner != nullptr && runner->on_phase != nullptr;
  if (!reuse_prepared) {
    if (observed) runner->on_phase(runner->observer, KanPhase::Basis, true);
    run_tasks(runner, static_cast<int64_t>((s.rows + kRowsPerTask - 1) / kRowsPerTask), &call, int8_phase_a_task);
    if (observed) runner->on_phase(runner->observer, KanPhase::Basis, false);
  }
  const size_t units = s.batch_path ? s.groups : batch;
  if (observed) runner->on_phase(runner->observer, KanPhase::TablesAndEdges, true);
  run_tasks(runner, static_cast<int64_t>(units * s.ranges), &call, int8_phase_b_task);
  if (observed) runner->on_phase(runner->observer, KanPhase::TablesAndEdges, false);
}

void run_tasks(const TaskRunner* runner, int64_t n, void* job, void (*task)(void*, int64_t)) {
  if (n <= 0) return;
  if (runner == nullptr || runner->run == nullptr || runner->threads <= 1 || n == 1) {
    for (int64_t t = 0; t < n; ++t) task(job, t);
  } else {
    runner->run(runner->context, n, job, task);
  }
}

}  // namespace

uint32_t basis_width(const KanLayerView& layer) {
  return layer.basis == Basis::GaussianRBF ? layer.grid_size : layer.spline_order + 1;
}

void dequantize_columns(const QuantView& cb, float* out) {
  const uint32_t K = cb.rows, dim = cb.cols;
  for (uint32_t c = 0; c < K; ++c) {
    for (uint32_t m = 0; m < dim; ++m) {
      const uint64_t n = static_cast<uint64_t>(c) * dim + m;
      const float v = cb.bits == 32 ? cb.f32[n] : static_cast<float>(read_signed_bits(cb.packed, n, cb.bits)) * cb.scales[c];
      out[static_cast<size_t>(m) * K + c] = v;
    }
  }
}

float bspline_window(const float* t, uint32_t n_knots, uint32_t order, float x, float* values, uint32_t* start) {
  const uint32_t k = order;
  const uint32_t kp1 = k + 1;
  for (uint32_t r = 0; r < kp1; ++r) values[r] = 0.0f;
  *start = 0;
  // Half-open intervals [t_j, t_{j+1}), j = 0 .. n_knots-2; NaN falls in none.
  if (!(x >= t[0]) || !(x < t[n_knots - 1])) return 0.0f;
  uint32_t lo = 0, hi = n_knots - 1;  // t[lo] <= x < t[hi]
  while (hi - lo > 1) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (x >= t[mid]) lo = mid; else hi = mid;
  }
  const int64_t j = lo;
  // local[r] holds B_{j-k+r, p}; entries whose index is not a basis of level p are 0.
  float local[kMaxSplineOrder + 2];
  for (uint32_t r = 0; r <= kp1; ++r) local[r] = 0.0f;
  local[k] = 1.0f;  // level 0: only B_{j,0} is 1
  const int64_t n_intervals = static_cast<int64_t>(n_knots) - 1;
  for (uint32_t p = 1; p <= k; ++p) {
    const int64_t last = n_intervals - 1 - p;  // level p has bases 0 .. n_knots-2-p
    for (uint32_t r = 0; r < kp1; ++r) {
      const int64_t m = j - k + r;
      if (m < 0 || m > last) {
        local[r] = 0.0f;
        continue;
      }
      // efficient-kan: left * B_{m,p-1} + right * B_{m+1,p-1} (separate roundings).
      const float left = (x - t[m]) / (t[m + p] - t[m]);
      const float right = (t[m + p + 1] - x) / (t[m + p + 1] - t[m + 1]);
      const float a = left * local[r];
      const float b = right * local[r + 1];  // local[kp1] stays 0 (B_{j+1,p-1}(x) = 0)
      local[r] = a + b;
    }
  }
  // Bases of the last level: 0 .. G+k-1 = n_knots-2-k. Keep a window of k+1 inside it.
  const int64_t n_bases = n_intervals - k;
  int64_t st = j - static_cast<int64_t>(k);
  st = std::max<int64_t>(0, std::min<int64_t>(st, n_bases - kp1));
  float sum = 0.0f;
  for (uint32_t r = 0; r < kp1; ++r) {
    const int64_t m = j - k + r;
    if (m < st || m >= st + kp1) continue;  // only m < 0 or m >= n_bases, which are 0
    values[m - st] = local[r];
  }
  for (uint32_t r = 0; r < kp1; ++r) sum += values[r];
  *start = static_cast<uint32_t>(st);
  return sum;
}

const char* int8_unsupported(const KanLayerView& L) {
  if (L.basis != Basis::BSpline) return "the int8 mode needs B-spline bases (an RBF layer's basis values are not bounded by 1)";
  if (L.word_bytes == 0) return "the int8 mode needs integer gains, biases and base weights (the layer stores float32)";
  if (L.codebook_size > kInt8MaxCodebook) return "the int8 mode needs a codebook of at most 256 words";
  if (L.index_bytes != 1) return "the int8 mode needs one-byte indices (index_bits <= 8)";
  if (L.group != kInt8Group) return "the int8 mode needs its grouped edge records (EdgePanels.group 4)";
  if (L.in_features > kInt8MaxInputs) return "the int8 mode takes at most 65536 inputs per layer";
  return nullptr;
}

size_t kan_int8_bytes(const KanLayerView& L) {
  const size_t K = L.codebook_size, dim = L.codebook_dim, padded = static_cast<size_t>(L.panels) * kPanelWidth;
  const size_t stride = K <= 32 ? 32 : K <= 64 ? 64 : K <= 128 ? 128 : 256;
  const size_t pairs = (L.spline_order + 2) / 2, starts = L.grid_size;
  auto up = [](size_t b) { return (b + 63) & ~static_cast<size_t>(63); };
  const size_t knot_rows = L.knot_stride ? L.in_features : 1;
  return up(K * dim) + up(starts * pairs * stride * 2) + 3 * up(padded * 4) + 2 * up(padded * 4) +
         up(knot_rows * L.spline_order * L.n_knots * 4);
}

void kan_int8_prepare(KanLayerView* layer, void* memory) {
  KanLayerView& L = *layer;
  const uint32_t K = L.codebook_size, dim = L.codebook_dim, in = L.in_features;
  const size_t padded = static_cast<size_t>(L.panels) * kPanelWidth;
  KanInt8View& q = L.int8;
  q.table_stride = K <= 32 ? 32 : K <= 64 ? 64 : K <= 128 ? 128 : 256;
  q.pairs = (L.spline_order + 2) / 2;
  auto up = [](size_t b) { return (b + 63) & ~static_cast<size_t>(63); };
  uint8_t* p = static_cast<uint8_t*>(memory);
  int8_t* cq = reinterpret_cast<int8_t*>(p);
  p += up(static_cast<size_t>(K) * dim);
  int8_t* windows = reinterpret_cast<int8_t*>(p);
  p += up(static_cast<size_t>(L.grid_size) * q.pairs * q.table_stride * 2);
  int32_t* gain_sum = reinterpret_cast<int32_t*>(p);
  p += up(padded * 4);
  int32_t* base_sum = reinterpret_cast<int32_t*>(p);
  p += up(padded * 4);
  int32_t* bias_sum = reinterpret_cast<int32_t*>(p);
  p += up(padded * 4);
  float* gain_scale = reinterpret_cast<float*>(p);
  p += up(padded * 4);
  float* bias_scale = reinterpret_cast<float*>(p);
  p += up(padded * 4);
  float* knot_inv = reinterpret_cast<float*>(p);
  const size_t knot_rows = L.knot_stride ? in : 1, n_knots = L.n_knots;
  for (size_t i = 0; i < knot_rows; ++i) {
    const float* t = L.knots + i * L.knot_stride;
    for (uint32_t pw = 1; pw <= L.spline_order; ++pw)
      for (size_t m = 0; m < n_knots; ++m)
        knot_inv[(i * L.spline_order + pw - 1) * n_knots + m] = m + pw < n_knots ? 1.0f / (t[m + pw] - t[m]) : 0.0f;
  }
  // One scale for the whole codebook: max |value| / qmax (a zero codebook: scale 0, all 0).
  const int32_t qmax = int8_codebook_qmax(L.spline_order);
  float amax = 0.0f;
  for (size_t j = 0; j < static_cast<size_t>(K) * dim; ++j) amax = std::max(amax, std::fabs(L.codebook_columns[j]));
  q.codebook_scale = amax / static_cast<float>(qmax);
  for (uint32_t c = 0; c < K; ++c)
    for (uint32_t m = 0; m < dim; ++m) {
      const float v = L.codebook_columns[static_cast<size_t>(m) * K + c];
      int32_t iv = 0;
      if (amax > 0.0f) iv = int8_rne(int8_clamp(v / q.codebook_scale, static_cast<float>(-qmax), static_cast<float>(qmax)));
      cq[static_cast<size_t>(c) * dim + m] = static_cast<int8_t>(iv);
    }
  for (uint32_t st = 0; st < L.grid_size; ++st)
    for (uint32_t pr = 0; pr < q.pairs; ++pr)
      for (uint32_t c = 0; c < q.table_stride; ++c)
        for (uint32_t h = 0; h < 2; ++h) {
          const uint32_t m = st + 2 * pr + h;
          windows[((static_cast<size_t>(st) * q.pairs + pr) * q.table_stride + c) * 2 + h] =
              c < K && m < dim ? cq[static_cast<size_t>(c) * dim + m] : 0;
        }
  // Per-output sums of the gain and base ints (the u8 offset corrections) and the scales.
  const uint32_t gs = 32 - L.gain.bits, bs = 32 - L.gain.bits - L.bias.bits - L.base.bits, ms = 32 - L.gain.bits - L.bias.bits;
  const size_t groups = (in + kInt8Group - 1) / kInt8Group;
  for (uint32_t o = 0; o < padded; ++o) {
    const uint32_t pnl = o / kPanelWidth, lane = o % kPanelWidth;
    int64_t sg = 0, sw = 0, sb = 0;
    for (uint32_t i = 0; i < in; ++i) {
      // Group records (EdgePanels.group 4): byte b of the word in plane 1 + b, at 4 lane + i % 4.
      const uint8_t* rec = L.edges + (pnl * groups + i / kInt8Group) * L.record_bytes + 4 * lane + i % kInt8Group;
      uint32_t v = 0;
      for (uint32_t b = 0; b < L.word_bytes; ++b) v |= static_cast<uint32_t>(rec[64 * (1 + b)]) << (8 * b);
      sg += static_cast<int32_t>(v << gs) >> (32 - L.gain.bits);
      sw += static_cast<int32_t>(v << bs) >> (32 - L.base.bits);
      sb += static_cast<int32_t>(v << ms) >> (32 - L.bias.bits);
    }
    gain_sum[o] = static_cast<int32_t>(sg);
    base_sum[o] = static_cast<int32_t>(sw);
    bias_sum[o] = static_cast<int32_t>(sb);
    gain_scale[o] = L.gain.scales[o] * q.codebook_scale;
    bias_scale[o] = L.bias.scales[o] / 255.0f;
  }
  q.codebook = cq;
  q.windows = windows;
  q.gain_sum = gain_sum;
  q.base_sum = base_sum;
  q.bias_sum = bias_sum;
  q.gain_scale = gain_scale;
  q.bias_scale = bias_scale;
  q.knot_inv = knot_inv;
}

float kan_silu_q8(float x) { return silu_q8_scalar(x); }

size_t kan_prepared_bytes(const KanLayerView& layer, size_t batch) {
  if (layer.compute == Compute::Int8) return plan_int8(layer, std::max<size_t>(batch, 1), 1).prepared_total;
  return plan(layer, std::max<size_t>(batch, 1), 1).prepared_total;
}

size_t kan_work_bytes(const KanLayerView& layer, size_t batch, uint32_t threads) {
  if (layer.compute == Compute::Int8) return plan_int8(layer, std::max<size_t>(batch, 1), threads).work_total;
  return plan(layer, std::max<size_t>(batch, 1), threads).work_total;
}

size_t kan_scratch_bytes(const KanLayerView& layer, size_t batch, uint32_t threads) {
  return align16(kan_prepared_bytes(layer, batch)) + kan_work_bytes(layer, batch, threads);
}

bool kan_same_preparation(const KanLayerView& a, const KanLayerView& b, size_t batch) {
  const bool sample = sample_path(batch);
  if (a.compute != b.compute) return false;
  if (a.in_features != b.in_features || a.basis != b.basis || a.grid_size != b.grid_size ||
      a.spline_order != b.spline_order || a.n_knots != b.n_knots || a.knot_stride != b.knot_stride ||
      a.codebook_size != b.codebook_size || a.codebook_dim != b.codebook_dim ||
      use_table(a, sample) != use_table(b, sample) ||
      std::memcmp(&a.rbf_denominator, &b.rbf_denominator, sizeof(float)) != 0)
    return false;
  const size_t knots = static_cast<size_t>(a.knot_stride ? a.in_features : 1) * a.n_knots;
  const size_t words = static_cast<size_t>(a.codebook_size) * a.codebook_dim;
  return (a.knots == b.knots || std::memcmp(a.knots, b.knots, knots * sizeof(float)) == 0) &&
         (a.codebook_columns == b.codebook_columns ||
          std::memcmp(a.codebook_columns, b.codebook_columns, words * sizeof(float)) == 0);
}

void kan_forward_prepared(const KanLayerView& layer, const float* x, size_t batch, float* y, void* prepared,
                          bool reuse_prepared, void* work, const TaskRunner* runner) {
  if (batch == 0) return;
  if (layer.compute == Compute::Int8) {
    forward_int8(layer, x, batch, y, prepared, reuse_prepared, work, runner);
    return;
  }
  const uint32_t threads = runner != nullptr ? std::max<uint32_t>(1, runner->threads) : 1;
  const Layout s = plan(layer, batch, threads);
  Call call{&layer, &kernel_ops(), &s, x, y, batch, static_cast<uint8_t*>(prepared), static_cast<float*>(work)};
  const bool observed = runner != nullptr && runner->on_phase != nullptr;
  if (!reuse_prepared) {
    if (observed) runner->on_phase(runner->observer, KanPhase::Basis, true);
    run_tasks(runner, static_cast<int64_t>((s.rows + kRowsPerTask - 1) / kRowsPerTask), &call, phase_a_task);
    if (observed) runner->on_phase(runner->observer, KanPhase::Basis, false);
  }
  const size_t units = s.sample ? s.groups : batch;
  if (observed) runner->on_phase(runner->observer, KanPhase::TablesAndEdges, true);
  run_tasks(runner, static_cast<int64_t>(units * s.ranges), &call, phase_b_task);
  if (observed) runner->on_phase(runner->observer, KanPhase::TablesAndEdges, false);
}

void kan_forward(const KanLayerView& layer, const float* x, size_t batch, float* y, void* scratch,
                 const TaskRunner* runner) {
  const size_t prepared = align16(kan_prepared_bytes(layer, batch));
  kan_forward_prepared(layer, x, batch, y, scratch, false, static_cast<uint8_t*>(scratch) + prepared, runner);
}

const char* kan_isa() { return current_variant().load(std::memory_order_relaxed)->name; }

size_t kan_isa_variants(KernelIsa* out, size_t capacity) {
  constexpr size_t kCount = sizeof kVariants / sizeof kVariants[0];
  static const std::vector<std::string> missing = [] {
    std::vector<std::string> m;
    for (const Variant& v : kVariants) m.push_back(v.runnable() ? std::string() : missing_flags(v.needs));
    return m;
  }();
  size_t n = 0;
  for (; n < kCount; ++n)
    if (n < capacity) out[n] = KernelIsa{kVariants[n].name, kVariants[n].runnable(), missing[n].c_str()};
  return n;
}

bool kan_force_isa(const char* name) {
  const Variant* v = find_variant(name);
  if (v == nullptr || !v->runnable()) return false;
  current_variant().store(v, std::memory_order_relaxed);
  return true;
}

}  // namespace lutham
