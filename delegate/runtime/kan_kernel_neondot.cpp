// The int8 mode's loops for aarch64 with the dot-product extension (built with
// -march=armv8.2-a+dotprod; chosen at run time only where the CPU reports asimddp, as
// Jetson Orin's Cortex-A78AE does). The float loops are the generic variant's.
//
// Same integers as kan_kernel_int8.h, so bit-identical outputs; signed dot products (sdot)
// stand in for vpdpbusd's unsigned x signed ones: the table (P8 + 128), bsum8 and silu8 are
// offset by -128 to signed bytes and 128 x the per-output sums of the gain, bias and base ints
// added back (exact, wrapping). Per group record (4 inputs x 16 outputs):
//  - each input's 16 indices are picked out of the index plane (tbl), looked up in its table
//    row (tbl/tbx over 64-byte quarters of the row) and the 4 inputs' values zipped back into
//    [output][input] order;
//  - each field is cut out of the word planes with byte shifts (sign-extended);
//  - vdotq_s32 adds 4 products (one per input) into each output's int32 lane.
// Batches run sample by sample (each builds its table block by block); sharing a decoded block
// across samples, as the AVX-512 variant does, is not done yet.
#include <arm_neon.h>

#include "kan_kernel_plan.h"

namespace lutham {
namespace neondot {
#include "kan_kernel_int8.h"

namespace {

constexpr uint32_t kPlane = kPanelWidth * kInt8Group;  // 64 bytes
constexpr uint32_t kGroupBytes = 3 * kPlane;

// A field of the 16-bit word as signed bytes from the low (L) and high (H) word planes.
struct Field {
  int8x16_t lo_shift, hi_shift, up, down;
  bool lo = false, hi = false;
  Field(uint32_t pos, uint32_t bits) {
    // u = (L >> pos) | (H << (8 - pos)) for pos < 8, H >> (pos - 8) otherwise; then the field's
    // top bit to bit 7 and an arithmetic shift back.
    lo = pos < 8;
    hi = pos + bits > 8;
    lo_shift = vdupq_n_s8(static_cast<int8_t>(-static_cast<int>(pos)));
    hi_shift = vdupq_n_s8(static_cast<int8_t>(pos < 8 ? 8 - static_cast<int>(pos) : 8 - static_cast<int>(pos)));
    const int top = static_cast<int>(8 - bits);
    up = vdupq_n_s8(static_cast<int8_t>(top));
    down = vdupq_n_s8(static_cast<int8_t>(-top));
  }
  inline int8x16_t get(uint8x16_t L, uint8x16_t H) const {
    uint8x16_t u;
    if (lo && hi) u = vorrq_u8(vshlq_u8(L, lo_shift), vshlq_u8(H, hi_shift));
    else if (lo) u = vshlq_u8(L, lo_shift);
    else u = vshlq_u8(H, hi_shift);
    return vshlq_s8(vreinterpretq_s8_u8(vshlq_u8(u, up)), down);
  }
};

struct Decoder {
  Field gain, bias, base;
  uint8x16_t sel[4];
  explicit Decoder(const KanLayerView& L)
      : gain(0, L.gain.bits), bias(L.gain.bits, L.bias.bits), base(L.gain.bits + L.bias.bits, L.base.bits) {
    for (uint32_t j = 0; j < 4; ++j) {
      uint8_t b[16];
      for (uint32_t l = 0; l < 16; ++l) b[l] = static_cast<uint8_t>(4 * l + j);
      sel[j] = vld1q_u8(b);
    }
  }
};

// Input j's 16 table values (output order) from its row (stride bytes) at the 16 indices x.
template <uint32_t kStride>
inline uint8x16_t lookup(const uint8_t* row, uint8x16_t x) {
  uint8x16_t r = vqtbl4q_u8(vld1q_u8_x4(row), x);
  if constexpr (kStride > 64) r = vqtbx4q_u8(r, vld1q_u8_x4(row + 64), vsubq_u8(x, vdupq_n_u8(64)));
  if constexpr (kStride > 128) {
    r = vqtbx4q_u8(r, vld1q_u8_x4(row + 128), vsubq_u8(x, vdupq_n_u8(128)));
    r = vqtbx4q_u8(r, vld1q_u8_x4(row + 192), vsubq_u8(x, vdupq_n_u8(192)));
  }
  return r;
}

inline int8x16_t offset_bcast(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return vreinterpretq_s8_u32(vdupq_n_u32(v ^ 0x80808080u));
}

// Panels [p0, p1) of one sample over the inputs [i0, i1) (i0 a multiple of 4); table row i at
// table + (i - i0) * stride, read kWidth bytes wide (64, 128 or 256: a 32-byte row is read as 64,
// its neighbour's half never indexed); bsum8/silu8 indexed by input. acc: [panel][3][16] int32.
template <uint32_t kWidth>
void panels_block(const KanLayerView& L, const Decoder& dec, const uint8_t* table, const uint8_t* bsum8,
                  const uint8_t* silu8, uint32_t p0, uint32_t p1, uint32_t i0, uint32_t i1, int32_t* acc) {
  const size_t groups = (L.in_features + kInt8Group - 1) / kInt8Group, stride = L.int8.table_stride;
  const uint8x16_t flip = vdupq_n_u8(0x80);
  for (uint32_t p = p0; p < p1; ++p) {
    int32_t* a = acc + static_cast<size_t>(p - p0) * 48;
    int32x4_t ag[4], ab[4], aw[4];
    for (int m = 0; m < 4; ++m) {
      ag[m] = vld1q_s32(a + 4 * m);
      ab[m] = vld1q_s32(a + 16 + 4 * m);
      aw[m] = vld1q_s32(a + 32 + 4 * m);
    }
    const uint8_t* rec = L.edges + (static_cast<size_t>(p) * groups + i0 / kInt8Group) * kGroupBytes;
    for (uint32_t g = i0; g < i1; g += kInt8Group, rec += kGroupBytes) {
      const uint8x16x4_t X = vld1q_u8_x4(rec);
      uint8x16_t R[4];
      for (uint32_t j = 0; j < 4; ++j)
        R[j] = lookup<kWidth>(table + static_cast<size_t>(g - i0 + j) * stride, vqtbl4q_u8(X, dec.sel[j]));
      const uint8x16_t z0 = vzip1q_u8(R[0], R[1]), z1 = vzip2q_u8(R[0], R[1]);
      const uint8x16_t z2 = vzip1q_u8(R[2], R[3]), z3 = vzip2q_u8(R[2], R[3]);
      uint8x16_t T[4];
      T[0] = vreinterpretq_u8_u16(vzip1q_u16(vreinterpretq_u16_u8(z0), vreinterpretq_u16_u8(z2)));
      T[1] = vreinterpretq_u8_u16(vzip2q_u16(vreinterpretq_u16_u8(z0), vreinterpretq_u16_u8(z2)));
      T[2] = vreinterpretq_u8_u16(vzip1q_u16(vreinterpretq_u16_u8(z1), vreinterpretq_u16_u8(z3)));
      T[3] = vreinterpretq_u8_u16(vzip2q_u16(vreinterpretq_u16_u8(z1), vreinterpretq_u16_u8(z3)));
      const uint8x16x4_t Lw = vld1q_u8_x4(rec + kPlane), Hw = vld1q_u8_x4(rec + 2 * kPlane);
      const int8x16_t bs = offset_bcast(bsum8 + g), us = offset_bcast(silu8 + g);
      for (int m = 0; m < 4; ++m) {
        ag[m] = vdotq_s32(ag[m], vreinterpretq_s8_u8(veorq_u8(T[m], flip)), dec.gain.get(Lw.val[m], Hw.val[m]));
        ab[m] = vdotq_s32(ab[m], bs, dec.bias.get(Lw.val[m], Hw.val[m]));
        aw[m] = vdotq_s32(aw[m], us, dec.base.get(Lw.val[m], Hw.val[m]));
      }
    }
    for (int m = 0; m < 4; ++m) {
      vst1q_s32(a + 4 * m, ag[m]);
      vst1q_s32(a + 16 + 4 * m, ab[m]);
      vst1q_s32(a + 32 + 4 * m, aw[m]);
    }
  }
}

// The signed sums with 128 x the per-output sums added back: the sums int8_output takes.
inline void store_outputs(const KanLayerView& L, uint32_t p0, uint32_t p1, const int32_t* acc, float lo, float sx, float* y) {
  for (uint32_t p = p0; p < p1; ++p) {
    const int32_t* a = acc + static_cast<size_t>(p - p0) * 48;
    const uint32_t lanes = std::min(kPanelWidth, L.out_features - p * kPanelWidth);
    for (uint32_t l = 0; l < lanes; ++l) {
      const uint32_t o = p * kPanelWidth + l;
      const uint32_t ag = static_cast<uint32_t>(a[l]) + 128u * static_cast<uint32_t>(L.int8.gain_sum[o]);
      const uint32_t ab = static_cast<uint32_t>(a[16 + l]) + 128u * static_cast<uint32_t>(L.int8.bias_sum[o]);
      const uint32_t aw = static_cast<uint32_t>(a[32 + l]) + 128u * static_cast<uint32_t>(L.int8.base_sum[o]);
      y[o] = int8_output(L, o, ag, ab, aw, lo, sx);
    }
  }
}

constexpr uint32_t kChunkPanels = 32;

template <uint32_t kWidth>
void lane_t(const KanLayerView& L, const Int8Sample& S, uint32_t p0, uint32_t p1, float* y) {
  const Decoder dec(L);
  const uint32_t in = L.in_features, stride = L.int8.table_stride;
  const uint32_t IB = std::max<uint32_t>(kInt8Group, (32768 / stride) / kInt8Group * kInt8Group);
  alignas(16) int32_t acc[kChunkPanels * 48];
  for (uint32_t c0 = p0; c0 < p1; c0 += kChunkPanels) {
    const uint32_t c1 = std::min(p1, c0 + kChunkPanels);
    std::memset(acc, 0, sizeof acc);
    for (uint32_t i0 = 0; i0 < in; i0 += IB)
      panels_block<kWidth>(L, dec, S.table + static_cast<size_t>(i0) * stride, S.bsum8, S.silu8, c0, c1, i0,
                            std::min(in, i0 + IB), acc);
    store_outputs(L, c0, c1, acc, S.lo, S.sx, y);
  }
}

void lane(const KanLayerView& L, const Int8Sample& S, uint32_t p0, uint32_t p1, float* y) {
  if (L.word_bytes != 2) return int8_lane(L, S, p0, p1, y);  // 32-bit words: the portable loops
  switch (L.int8.table_stride) {
    case 32:
    case 64: return lane_t<64>(L, S, p0, p1, y);
    case 128: return lane_t<128>(L, S, p0, p1, y);
    default: return lane_t<256>(L, S, p0, p1, y);
  }
}

// Table rows: the portable definition with NEON: B8 x cq in int16 (exact), the pair sums
// saturating (sqadd) and the pairs' sum wrapping, (x + 128) >> 8 by a rounding shift, the
// clamp by a saturating narrow, + 128.
void table_rows(const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint8_t* T) {
  const uint32_t K = L.codebook_size, stride = L.int8.table_stride, pairs = L.int8.pairs;
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* b = b8 + r * 2 * pairs;
    const int8_t* w = L.int8.windows + static_cast<size_t>(start[r]) * pairs * stride * 2;
    uint8_t* t = T + r * stride;
    for (uint32_t c0 = 0; c0 < stride; c0 += 16) {
      int16x8_t acc_lo = vdupq_n_s16(0), acc_hi = vdupq_n_s16(0);
      for (uint32_t p = 0; p < pairs; ++p) {
        const int8x16x2_t cw = vld2q_s8(w + (static_cast<size_t>(p) * stride + c0) * 2);  // [c][2] -> first, second
        const int16x8_t b0 = vdupq_n_s16(b[2 * p]), b1 = vdupq_n_s16(b[2 * p + 1]);
        const int16x8_t lo = vqaddq_s16(vmulq_s16(b0, vmovl_s8(vget_low_s8(cw.val[0]))), vmulq_s16(b1, vmovl_s8(vget_low_s8(cw.val[1]))));
        const int16x8_t hi = vqaddq_s16(vmulq_s16(b0, vmovl_high_s8(cw.val[0])), vmulq_s16(b1, vmovl_high_s8(cw.val[1])));
        acc_lo = p == 0 ? lo : vaddq_s16(acc_lo, lo);
        acc_hi = p == 0 ? hi : vaddq_s16(acc_hi, hi);
      }
      const int8x16_t q = vcombine_s8(vqmovn_s16(vrshrq_n_s16(acc_lo, 8)), vqmovn_s16(vrshrq_n_s16(acc_hi, 8)));
      vst1q_u8(t + c0, veorq_u8(vreinterpretq_u8_s8(q), vdupq_n_u8(0x80)));
    }
    for (uint32_t c = K; c < stride; ++c) t[c] = 128;
  }
}

void batch(const KanLayerView& L, const Int8Batch& B, uint32_t p0, uint32_t p1, uint8_t* scratch, float* y) {
  if (L.word_bytes != 2) return int8_batch(L, B, p0, p1, scratch, y);
  // Sample by sample, with the scratch's table rows (one sample's block at a time) and
  // accumulators.
  const uint32_t in = L.in_features, np = p1 - p0, in4 = int8_padded_inputs(L), stride = L.int8.table_stride;
  const Int8BatchScratch sc = carve_int8_batch(L, B.samples, np, scratch);
  const Decoder dec(L);
  for (uint32_t s = 0; s < B.samples; ++s) {
    int32_t* acc = reinterpret_cast<int32_t*>(sc.acc) + static_cast<size_t>(s) * np * 48;
    std::memset(acc, 0, static_cast<size_t>(np) * 48 * sizeof(int32_t));
    for (uint32_t i0 = 0; i0 < in; i0 += kInt8BatchBlock) {
      const uint32_t i1 = std::min(in, i0 + kInt8BatchBlock);
      const size_t row = static_cast<size_t>(s) * in + i0;
      table_rows(L, B.b8 + row * 2 * L.int8.pairs, B.start + row, i1 - i0, sc.tables);
      const uint8_t* bsum8 = B.bsum8 + static_cast<size_t>(s) * in4;
      const uint8_t* silu8 = B.silu8 + static_cast<size_t>(s) * in4;
      switch (stride) {
        case 32:
        case 64: panels_block<64>(L, dec, sc.tables, bsum8, silu8, p0, p1, i0, i1, acc); break;
        case 128: panels_block<128>(L, dec, sc.tables, bsum8, silu8, p0, p1, i0, i1, acc); break;
        default: panels_block<256>(L, dec, sc.tables, bsum8, silu8, p0, p1, i0, i1, acc); break;
      }
    }
    store_outputs(L, p0, p1, acc, B.lo[s], B.sx[s], y + static_cast<size_t>(s) * L.out_features);
  }
}

}  // namespace

const KernelOps& ops() {
  static const KernelOps k = [] {
    KernelOps o = generic::ops();
    o.int8_table = [](const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint32_t first, uint8_t* T) {
      table_rows(L, b8, start, rows, T + static_cast<size_t>(first) * L.int8.table_stride);
    };
    o.int8_lane = &lane;
    o.int8_batch = &batch;
    return o;
  }();
  return k;
}

}  // namespace neondot
}  // namespace lutham
