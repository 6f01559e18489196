// The int8 mode's loops for x86-64 with AVX-512 VBMI, VNNI and GFNI (built with those flags;
// chosen at run time by kan_kernel.cpp only on CPUs that have them). The float loops are the
// avx512 variant's.
//
// Same integers as kan_kernel_int8.h, by construction (exact int32 sums, wrapping as there),
// and the same float operations in the same order, so the outputs are bit-identical to the
// generic variant. The schedule (kan_kernel.h describes the math):
//  - 4 consecutive records of a panel (4 inputs x 16 outputs, 192 bytes, three loads) are
//    rearranged with vpermi2b into [output][input] byte order: the indices, the low and the high
//    bytes of the value words; vgf2p8affineqb picks each field's bits out of those bytes and
//    sign-extends them (one bit matrix per byte), so gain, bias and base are signed bytes;
//  - the table row of each of the 4 inputs (K <= 128: two registers) is read with one merge-
//    masked vpermi2b per input (K <= 64: two inputs per vpermi2b, K <= 32: all four at once);
//  - vpdpbusd adds the 4 products of each output (one per input) into its int32 lane: 64
//    multiply-adds per instruction, three per record group (gain x table, bias x bsum8,
//    base x silu8).
#include <immintrin.h>

#include "kan_kernel_plan.h"

namespace lutham {
namespace avx512vnni {
#include "kan_kernel_int8.h"

namespace {

// ---- silu and the per-sample silu8 (the scalar pieces of kan_kernel_plan.h, 16 lanes).

inline __m512 silu16(__m512 x) {
  const __m512 neg = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN)));
  const __m512 v = _mm512_min_ps(_mm512_max_ps(neg, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  __m512 fx = _mm512_mul_ps(v, _mm512_set1_ps(1.44269504088896341f));
  fx = _mm512_sub_ps(_mm512_add_ps(fx, _mm512_set1_ps(12582912.0f)), _mm512_set1_ps(12582912.0f));
  __m512 r = _mm512_sub_ps(v, _mm512_mul_ps(fx, _mm512_set1_ps(0.693359375f)));
  r = _mm512_sub_ps(r, _mm512_mul_ps(fx, _mm512_set1_ps(-2.12194440e-4f)));
  const __m512 z = _mm512_mul_ps(r, r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_add_ps(_mm512_mul_ps(y, z), r);
  y = _mm512_add_ps(y, _mm512_set1_ps(1.0f));
  const __m512i n = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(fx), _mm512_set1_epi32(127)), 23);
  const __m512 e = _mm512_mul_ps(y, _mm512_castsi512_ps(n));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

void silu_block(const float* x, size_t n, float* out) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, silu16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(out + i, m, silu16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

void quantize_silu(const float* silu, uint32_t in, uint8_t* silu8, float* lo_out, float* sx_out) {
  __m512 lo = _mm512_set1_ps(INFINITY), hi = _mm512_set1_ps(-INFINITY);
  __mmask16 finite = 0xFFFF;
  uint32_t i = 0;
  for (; i + 16 <= in; i += 16) {
    const __m512 v = _mm512_loadu_ps(silu + i);
    finite &= _mm512_cmp_ps_mask(_mm512_sub_ps(v, v), _mm512_setzero_ps(), _CMP_EQ_OQ);
    lo = _mm512_min_ps(v, lo);
    hi = _mm512_max_ps(v, hi);
  }
  if (i < in) {
    const __mmask16 m = static_cast<__mmask16>((1u << (in - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, silu + i);
    finite &= _mm512_cmp_ps_mask(_mm512_sub_ps(v, v), _mm512_setzero_ps(), _CMP_EQ_OQ) | static_cast<__mmask16>(~m);
    lo = _mm512_mask_min_ps(lo, m, v, lo);
    hi = _mm512_mask_max_ps(hi, m, v, hi);
  }
  const uint32_t in4 = (in + kInt8Group - 1) / kInt8Group * kInt8Group;
  if (finite != 0xFFFF) {
    std::memset(silu8, 0, in4);
    *lo_out = *sx_out = NAN;
    return;
  }
  // The same lo/hi as the sequential scalar scan (min/max of finite values; signed zeros
  // are made +0 there and here).
  float lo_s = _mm512_reduce_min_ps(lo) + 0.0f, hi_s = _mm512_reduce_max_ps(hi) + 0.0f;
  const float range = hi_s - lo_s;
  const float inv = range > 0.0f ? 255.0f / range : 0.0f;
  const __m512 lo_v = _mm512_set1_ps(lo_s), inv_v = _mm512_set1_ps(inv), top = _mm512_set1_ps(255.0f);
  for (i = 0; i < in; i += 16) {
    const uint32_t left = in - i;
    const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
    __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, silu + i), lo_v), inv_v);
    t = _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), top);
    _mm_mask_storeu_epi8(silu8 + i, m, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(t)));
  }
  for (i = in; i < in4; ++i) silu8[i] = 0;
  *lo_out = lo_s;
  *sx_out = range / 255.0f;
}

// ---- Table rows: vpmaddubsw of the broadcast B8 pairs with the codebook windows, vpaddw,
// vpmulhrsw by 128 (= (x + 128) >> 8, exactly), vpacksswb (the clamp), vpermq (the order
// vpacksswb interleaves), xor 0x80.

inline __m512i table_block32(const uint8_t* b, const int8_t* w, uint32_t pairs, uint32_t stride, uint32_t c0) {
  __m512i acc = _mm512_maddubs_epi16(_mm512_set1_epi16(static_cast<short>(b[0] | (b[1] << 8))),
                                     _mm512_loadu_si512(w + static_cast<size_t>(c0) * 2));
  for (uint32_t p = 1; p < pairs; ++p)
    acc = _mm512_add_epi16(acc, _mm512_maddubs_epi16(_mm512_set1_epi16(static_cast<short>(b[2 * p] | (b[2 * p + 1] << 8))),
                                                     _mm512_loadu_si512(w + (static_cast<size_t>(p) * stride + c0) * 2)));
  return _mm512_mulhrs_epi16(acc, _mm512_set1_epi16(128));
}

void table_rows(const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint8_t* T) {
  const uint32_t stride = L.int8.table_stride, pairs = L.int8.pairs;
  const __m512i order = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* b = b8 + r * 2 * pairs;
    const int8_t* w = L.int8.windows + static_cast<size_t>(start[r]) * pairs * stride * 2;
    uint8_t* t = T + r * stride;
    if (stride == 32) {
      const __m512i v = table_block32(b, w, pairs, stride, 0);
      const __m512i packed = _mm512_xor_si512(_mm512_permutexvar_epi64(order, _mm512_packs_epi16(v, v)), flip);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(t), _mm512_castsi512_si256(packed));
      continue;
    }
    for (uint32_t c0 = 0; c0 < stride; c0 += 64) {
      const __m512i v0 = table_block32(b, w, pairs, stride, c0), v1 = table_block32(b, w, pairs, stride, c0 + 32);
      _mm512_storeu_si512(t + c0, _mm512_xor_si512(_mm512_permutexvar_epi64(order, _mm512_packs_epi16(v0, v1)), flip));
    }
  }
}

// ---- Record decode: 4 records of a panel -> indices, gains, biases, base weights as bytes in
// [output][input] order (byte 4 l + j: output lane l, input j of the group).

// vpermi2b controls picking one byte per (l, j) from the 192 bytes A|B|C of 4 records: bytes
// below 128 from A|B, the others (mask) from C.
struct Gather3 {
  __m512i ab, c;
  __mmask64 from_c;
  // offset(l, j): the byte's offset in the group.
  template <typename F>
  explicit Gather3(F offset) {
    alignas(64) uint8_t ab_b[64], c_b[64];
    uint64_t m = 0;
    for (uint32_t l = 0; l < 16; ++l)
      for (uint32_t j = 0; j < 4; ++j) {
        const uint32_t k = 4 * l + j, src = offset(l, j);
        ab_b[k] = static_cast<uint8_t>(src < 128 ? src : 0);
        c_b[k] = static_cast<uint8_t>(src >= 128 ? src - 128 : 0);
        if (src >= 128) m |= 1ull << k;
      }
    ab = _mm512_load_si512(ab_b);
    c = _mm512_load_si512(c_b);
    from_c = m;
  }
  inline __m512i pick(__m512i A, __m512i B, __m512i C) const {
    return _mm512_mask_permutexvar_epi8(_mm512_permutex2var_epi8(A, ab, B), from_c, c, C);
  }
};

// One field (bits [pos, pos + bits) of the 16-bit word) as a signed byte: output bit i is word
// bit pos + min(i, bits - 1), from the low byte L or the high byte H (GF(2) bit matrices).
struct Field {
  __m512i from_lo, from_hi;
  bool uses_lo = false, uses_hi = false;
  Field(uint32_t pos, uint32_t bits) {
    uint64_t ml = 0, mh = 0;
    for (uint32_t i = 0; i < 8; ++i) {
      const uint32_t w = pos + std::min(i, bits - 1);
      const uint64_t row = static_cast<uint64_t>(7 - i) * 8;
      if (w < 8) ml |= (1ull << w) << row;
      else mh |= (1ull << (w - 8)) << row;
    }
    uses_lo = ml != 0;
    uses_hi = mh != 0;
    from_lo = _mm512_set1_epi64(static_cast<long long>(ml));
    from_hi = _mm512_set1_epi64(static_cast<long long>(mh));
  }
  inline __m512i get(__m512i lo, __m512i hi) const {
    if (uses_lo && uses_hi)
      return _mm512_xor_si512(_mm512_gf2p8affine_epi64_epi8(lo, from_lo, 0), _mm512_gf2p8affine_epi64_epi8(hi, from_hi, 0));
    if (uses_lo) return _mm512_gf2p8affine_epi64_epi8(lo, from_lo, 0);
    return _mm512_gf2p8affine_epi64_epi8(hi, from_hi, 0);
  }
};

constexpr uint32_t kRecord = kPanelWidth * 3;  // u8 indices + u16 words
constexpr uint32_t kGroupBytes = kInt8Group * kRecord;

struct Decoder {
  Gather3 idx, lo, hi;
  Field gain, bias, base;
  explicit Decoder(const KanLayerView& L)
      : idx([](uint32_t l, uint32_t j) { return kRecord * j + l; }),
        lo([](uint32_t l, uint32_t j) { return kRecord * j + 16 + 2 * l; }),
        hi([](uint32_t l, uint32_t j) { return kRecord * j + 17 + 2 * l; }),
        gain(0, L.gain.bits),
        bias(L.gain.bits, L.bias.bits),
        base(L.gain.bits + L.bias.bits, L.base.bits) {}

  // The group of `rows` (1..4) records at rec.
  inline void decode(const uint8_t* rec, uint32_t rows, __m512i& X, __m512i& G, __m512i& B, __m512i& W) const {
    __m512i A, Bv, C;
    if (rows == kInt8Group) {
      A = _mm512_loadu_si512(rec);
      Bv = _mm512_loadu_si512(rec + 64);
      C = _mm512_loadu_si512(rec + 128);
    } else {
      const uint32_t bytes = rows * kRecord;
      auto mask = [bytes](uint32_t at) -> __mmask64 {
        return bytes <= at ? 0 : bytes - at >= 64 ? ~0ull : (1ull << (bytes - at)) - 1;
      };
      A = _mm512_maskz_loadu_epi8(mask(0), rec);
      Bv = _mm512_maskz_loadu_epi8(mask(64), rec + 64);
      C = _mm512_maskz_loadu_epi8(mask(128), rec + 128);
    }
    X = idx.pick(A, Bv, C);
    const __m512i l = lo.pick(A, Bv, C), h = hi.pick(A, Bv, C);
    G = gain.get(l, h);
    B = bias.get(l, h);
    W = base.get(l, h);
  }
};

constexpr uint64_t kLaneJ[4] = {0x1111111111111111ull, 0x2222222222222222ull, 0x4444444444444444ull,
                                0x8888888888888888ull};

// The table values T_j[X] of a group's 4 inputs; `rows` points at input 4g's table row.
template <uint32_t kStride>
struct Lookup {
  __m512i t[kStride == 32 ? 2 : kStride == 64 ? 4 : kStride == 128 ? 8 : 16];
  inline void load(const uint8_t* rows) {
    constexpr uint32_t n = sizeof t / sizeof t[0];
    for (uint32_t q = 0; q < n; ++q) t[q] = _mm512_loadu_si512(rows + 64 * q);
  }
  inline __m512i get(__m512i X) const {
    if constexpr (kStride == 32) {
      // 4 rows of 32 in t[0] | t[1]: input j's entries from byte 32 j.
      const __m512i x = _mm512_or_si512(X, _mm512_set1_epi32(0x60402000));
      return _mm512_permutex2var_epi8(t[0], x, t[1]);
    } else if constexpr (kStride == 64) {
      const __m512i x = _mm512_or_si512(X, _mm512_set1_epi32(0x40004000));
      const __m512i r = _mm512_mask2_permutex2var_epi8(t[0], x, kLaneJ[0] | kLaneJ[1], t[1]);
      return _mm512_mask2_permutex2var_epi8(t[2], r, kLaneJ[2] | kLaneJ[3], t[3]);
    } else if constexpr (kStride == 128) {
      __m512i r = _mm512_mask2_permutex2var_epi8(t[0], X, kLaneJ[0], t[1]);
      r = _mm512_mask2_permutex2var_epi8(t[2], r, kLaneJ[1], t[3]);
      r = _mm512_mask2_permutex2var_epi8(t[4], r, kLaneJ[2], t[5]);
      return _mm512_mask2_permutex2var_epi8(t[6], r, kLaneJ[3], t[7]);
    } else {
      const __mmask64 high = _mm512_movepi8_mask(X);
      __m512i r = X;
      for (uint32_t j = 0; j < 4; ++j) {
        r = _mm512_mask2_permutex2var_epi8(t[4 * j], r, kLaneJ[j] & ~high, t[4 * j + 1]);
        r = _mm512_mask2_permutex2var_epi8(t[4 * j + 2], r, kLaneJ[j] & high, t[4 * j + 3]);
      }
      return r;
    }
  }
};

inline __m512i broadcast4(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(static_cast<int>(v));
}

// The three sums of a panel as 16 outputs (int8_output, 16 lanes).
inline void store_outputs(const KanLayerView& L, uint32_t p, __m512i ag, __m512i ab, __m512i aw, float lo, float sx,
                          float* y) {
  const uint32_t o = p * kPanelWidth;
  const __m512i g = _mm512_sub_epi32(ag, _mm512_slli_epi32(_mm512_loadu_si512(L.int8.gain_sum + o), 7));
  const __m512 t1 = _mm512_mul_ps(_mm512_loadu_ps(L.int8.gain_scale + o), _mm512_cvtepi32_ps(g));
  const __m512 t2 = _mm512_mul_ps(_mm512_loadu_ps(L.int8.bias_scale + o), _mm512_cvtepi32_ps(ab));
  const __m512 t3 = _mm512_mul_ps(_mm512_set1_ps(sx), _mm512_cvtepi32_ps(aw));
  const __m512 t4 = _mm512_mul_ps(_mm512_set1_ps(lo), _mm512_cvtepi32_ps(_mm512_loadu_si512(L.int8.base_sum + o)));
  const __m512 v = _mm512_add_ps(_mm512_add_ps(t1, t2), _mm512_mul_ps(_mm512_loadu_ps(L.base.scales + o), _mm512_add_ps(t3, t4)));
  const uint32_t lanes = std::min(kPanelWidth, L.out_features - o);
  _mm512_mask_storeu_ps(y + o, static_cast<__mmask16>((1u << lanes) - 1u), v);
}

constexpr size_t kPrefetchAhead = 1024;

// ---- Lane path: NP panels over the groups of inputs [i0, i1), accumulators in acc (3 x 16
// int32 per panel: gain, bias, base).
template <uint32_t kStride, int NP>
void lane_block(const KanLayerView& L, const Decoder& dec, const Int8Sample& S, uint32_t p, uint32_t i0, uint32_t i1,
                int32_t* acc) {
  const uint32_t in = L.in_features;
  __m512i ag[NP], ab[NP], aw[NP];
  const uint8_t* rec[NP];
  for (int q = 0; q < NP; ++q) {
    ag[q] = _mm512_loadu_si512(acc + (3 * q + 0) * 16);
    ab[q] = _mm512_loadu_si512(acc + (3 * q + 1) * 16);
    aw[q] = _mm512_loadu_si512(acc + (3 * q + 2) * 16);
    rec[q] = L.edges + (static_cast<size_t>(p + q) * in + i0) * kRecord;
  }
  Lookup<kStride> table;
  for (uint32_t g = i0; g < i1; g += kInt8Group) {
    const uint32_t rows = std::min(kInt8Group, in - g);
    table.load(S.table + static_cast<size_t>(g) * kStride);
    const __m512i bs = broadcast4(S.bsum8 + g), us = broadcast4(S.silu8 + g);
    for (int q = 0; q < NP; ++q) {
      _mm_prefetch(reinterpret_cast<const char*>(rec[q] + kPrefetchAhead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(rec[q] + kPrefetchAhead + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(rec[q] + kPrefetchAhead + 128), _MM_HINT_T0);
      __m512i X, G, B, W;
      dec.decode(rec[q], rows, X, G, B, W);
      ag[q] = _mm512_dpbusd_epi32(ag[q], table.get(X), G);
      ab[q] = _mm512_dpbusd_epi32(ab[q], bs, B);
      aw[q] = _mm512_dpbusd_epi32(aw[q], us, W);
      rec[q] += kGroupBytes;
    }
  }
  for (int q = 0; q < NP; ++q) {
    _mm512_storeu_si512(acc + (3 * q + 0) * 16, ag[q]);
    _mm512_storeu_si512(acc + (3 * q + 1) * 16, ab[q]);
    _mm512_storeu_si512(acc + (3 * q + 2) * 16, aw[q]);
  }
}

constexpr int kLanePanels = 4;

template <uint32_t kStride>
void lane_panels(const KanLayerView& L, const Int8Sample& S, uint32_t p0, uint32_t p1, float* y) {
  const uint32_t in = L.in_features;
  const uint32_t IB = std::max<uint32_t>(kInt8Group, (32768 / kStride) / kInt8Group * kInt8Group);
  const Decoder dec(L);
  alignas(64) int32_t acc[kLaneChunkPanels * 3 * 16];
  for (uint32_t c0 = p0; c0 < p1; c0 += kLaneChunkPanels) {
    const uint32_t c1 = std::min(p1, c0 + kLaneChunkPanels);
    std::memset(acc, 0, sizeof acc);
    for (uint32_t i0 = 0; i0 < in; i0 += IB) {
      const uint32_t i1 = std::min(in, i0 + IB);
      uint32_t p = c0;
      for (; p + kLanePanels <= c1; p += kLanePanels)
        lane_block<kStride, kLanePanels>(L, dec, S, p, i0, i1, acc + (p - c0) * 48);
      for (; p < c1; ++p) lane_block<kStride, 1>(L, dec, S, p, i0, i1, acc + (p - c0) * 48);
    }
    for (uint32_t p = c0; p < c1; ++p) {
      const int32_t* a = acc + (p - c0) * 48;
      store_outputs(L, p, _mm512_load_si512(a), _mm512_load_si512(a + 16), _mm512_load_si512(a + 32), S.lo, S.sx, y);
    }
  }
}

void lane(const KanLayerView& L, const Int8Sample& S, uint32_t p0, uint32_t p1, float* y) {
  if (L.word_bytes != 2) return int8_lane(L, S, p0, p1, y);  // 32-bit words: the portable loops
  switch (L.int8.table_stride) {
    case 32: return lane_panels<32>(L, S, p0, p1, y);
    case 64: return lane_panels<64>(L, S, p0, p1, y);
    case 128: return lane_panels<128>(L, S, p0, p1, y);
    default: return lane_panels<256>(L, S, p0, p1, y);
  }
}

// ---- Batch path: per block of kInt8BatchBlock inputs, the group's table rows are built into
// the scratch, each group of kInt8BatchPanels panels is decoded once into the scratch, and
// every sample then streams the decoded block with its own table rows.
template <uint32_t kStride, int NP>
void batch_panels_block(const KanLayerView& L, const Int8Batch& Bt, const Int8BatchScratch& sc, uint32_t np, uint32_t pq,
                        uint32_t i0, uint32_t ib, uint32_t in4) {
  const uint32_t groups = (ib + kInt8Group - 1) / kInt8Group;
  for (uint32_t s = 0; s < Bt.samples; ++s) {
    int32_t* acc = reinterpret_cast<int32_t*>(sc.acc) + (static_cast<size_t>(s) * np + pq) * 48;
    __m512i ag[NP], ab[NP], aw[NP];
    for (int q = 0; q < NP; ++q) {
      ag[q] = _mm512_loadu_si512(acc + (3 * q + 0) * 16);
      ab[q] = _mm512_loadu_si512(acc + (3 * q + 1) * 16);
      aw[q] = _mm512_loadu_si512(acc + (3 * q + 2) * 16);
    }
    const uint8_t* tables = sc.tables + static_cast<size_t>(s) * kInt8BatchBlock * kStride;
    const uint8_t* bsum8 = Bt.bsum8 + static_cast<size_t>(s) * in4 + i0;
    const uint8_t* silu8 = Bt.silu8 + static_cast<size_t>(s) * in4 + i0;
    Lookup<kStride> table;
    for (uint32_t g = 0; g < groups; ++g) {
      table.load(tables + static_cast<size_t>(g) * kInt8Group * kStride);
      const __m512i bs = broadcast4(bsum8 + g * kInt8Group), us = broadcast4(silu8 + g * kInt8Group);
      for (int q = 0; q < NP; ++q) {
        const uint8_t* d = sc.decoded + (static_cast<size_t>(q) * (kInt8BatchBlock / kInt8Group) + g) * 256;
        ag[q] = _mm512_dpbusd_epi32(ag[q], table.get(_mm512_load_si512(d)), _mm512_load_si512(d + 64));
        ab[q] = _mm512_dpbusd_epi32(ab[q], bs, _mm512_load_si512(d + 128));
        aw[q] = _mm512_dpbusd_epi32(aw[q], us, _mm512_load_si512(d + 192));
      }
    }
    for (int q = 0; q < NP; ++q) {
      _mm512_storeu_si512(acc + (3 * q + 0) * 16, ag[q]);
      _mm512_storeu_si512(acc + (3 * q + 1) * 16, ab[q]);
      _mm512_storeu_si512(acc + (3 * q + 2) * 16, aw[q]);
    }
  }
}

template <uint32_t kStride>
void batch_panels(const KanLayerView& L, const Int8Batch& Bt, uint32_t p0, uint32_t p1, uint8_t* scratch, float* y) {
  const uint32_t in = L.in_features, np = p1 - p0, in4 = int8_padded_inputs(L), out = L.out_features;
  const Decoder dec(L);
  const Int8BatchScratch sc = carve_int8_batch(L, Bt.samples, np, scratch);
  std::memset(sc.acc, 0, static_cast<size_t>(Bt.samples) * np * 48 * sizeof(int32_t));
  for (uint32_t i0 = 0; i0 < in; i0 += kInt8BatchBlock) {
    const uint32_t ib = std::min(kInt8BatchBlock, in - i0), groups = (ib + kInt8Group - 1) / kInt8Group;
    for (uint32_t s = 0; s < Bt.samples; ++s) {
      const size_t row = static_cast<size_t>(s) * in + i0;
      table_rows(L, Bt.b8 + row * 2 * L.int8.pairs, Bt.start + row, ib, sc.tables + static_cast<size_t>(s) * kInt8BatchBlock * kStride);
    }
    for (uint32_t pq = 0; pq < np; pq += kInt8BatchPanels) {
      const uint32_t nq = std::min(kInt8BatchPanels, np - pq);
      for (uint32_t q = 0; q < nq; ++q) {
        const uint8_t* rec = L.edges + (static_cast<size_t>(p0 + pq + q) * in + i0) * kRecord;
        for (uint32_t g = 0; g < groups; ++g, rec += kGroupBytes) {
          __m512i X, G, B, W;
          dec.decode(rec, std::min(kInt8Group, ib - g * kInt8Group), X, G, B, W);
          uint8_t* d = sc.decoded + (static_cast<size_t>(q) * (kInt8BatchBlock / kInt8Group) + g) * 256;
          _mm512_store_si512(d, X);
          _mm512_store_si512(d + 64, G);
          _mm512_store_si512(d + 128, B);
          _mm512_store_si512(d + 192, W);
        }
      }
      switch (nq) {
        case 4: batch_panels_block<kStride, 4>(L, Bt, sc, np, pq, i0, ib, in4); break;
        case 3: batch_panels_block<kStride, 3>(L, Bt, sc, np, pq, i0, ib, in4); break;
        case 2: batch_panels_block<kStride, 2>(L, Bt, sc, np, pq, i0, ib, in4); break;
        default: batch_panels_block<kStride, 1>(L, Bt, sc, np, pq, i0, ib, in4); break;
      }
    }
  }
  for (uint32_t s = 0; s < Bt.samples; ++s)
    for (uint32_t p = p0; p < p1; ++p) {
      const int32_t* a = reinterpret_cast<const int32_t*>(sc.acc) + (static_cast<size_t>(s) * np + (p - p0)) * 48;
      store_outputs(L, p, _mm512_loadu_si512(a), _mm512_loadu_si512(a + 16), _mm512_loadu_si512(a + 32), Bt.lo[s], Bt.sx[s],
                    y + static_cast<size_t>(s) * out);
    }
}

void batch(const KanLayerView& L, const Int8Batch& B, uint32_t p0, uint32_t p1, uint8_t* scratch, float* y) {
  if (L.word_bytes != 2) return int8_batch(L, B, p0, p1, scratch, y);
  switch (L.int8.table_stride) {
    case 32: return batch_panels<32>(L, B, p0, p1, scratch, y);
    case 64: return batch_panels<64>(L, B, p0, p1, scratch, y);
    case 128: return batch_panels<128>(L, B, p0, p1, scratch, y);
    default: return batch_panels<256>(L, B, p0, p1, scratch, y);
  }
}

}  // namespace

const KernelOps& ops() {
  static const KernelOps k = [] {
    KernelOps o = avx512::ops();
    o.silu_q8 = &silu_block;
    o.int8_quantize = &quantize_silu;
    o.int8_table = &table_rows;
    o.int8_lane = &lane;
    o.int8_batch = &batch;
    return o;
  }();
  return k;
}

}  // namespace avx512vnni
}  // namespace lutham
