// The int8 mode's loops for x86-64 with AVX-512 VBMI, VNNI and GFNI (built with those flags;
// chosen at run time by kan_kernel.cpp only on CPUs that have them). The float loops are the
// avx512 variant's.
//
// Same integers as kan_kernel_int8.h, by construction (exact int32 sums, wrapping as there),
// and the same float operations in the same order, so the outputs are bit-identical to the
// generic variant. The schedule (kan_kernel.h describes the math):
//  - a group record (EdgePanels.group 4: 4 inputs x 16 outputs, 192 bytes, three loads) holds
//    the indices and the low and high bytes of the value words in [output][input] byte order;
//    vgf2p8affineqb picks each field's bits out of those bytes and sign-extends them (one bit
//    matrix per byte), so gain, bias and base are signed bytes in place (no rearranging:
//    reading the records of schema version 2 needed 6 vpermi2b/vpermb per group, which made
//    the loop twice as slow, port 5 bound);
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

// ---- Phase A rows: 16 rows at a time when the knots are shared (bspline_window_q8, 16 lanes:
// the interval by counting knots <= x, knot and reciprocal reads by vpermt2ps from registers).
constexpr uint32_t kVectorKnots = 32;
constexpr uint32_t kVectorOrder = 7;

struct Knots16 {
  __m512 t0, t1;
  __m512 i0[kVectorOrder], i1[kVectorOrder];
  explicit Knots16(const KanLayerView& L) {
    alignas(64) float pad[kVectorKnots] = {0};
    std::memcpy(pad, L.knots, L.n_knots * sizeof(float));
    t0 = _mm512_load_ps(pad);
    t1 = _mm512_load_ps(pad + 16);
    for (uint32_t p = 0; p < L.spline_order; ++p) {
      std::memset(pad, 0, sizeof pad);
      std::memcpy(pad, L.int8.knot_inv + static_cast<size_t>(p) * L.n_knots, L.n_knots * sizeof(float));
      i0[p] = _mm512_load_ps(pad);
      i1[p] = _mm512_load_ps(pad + 16);
    }
  }
};

inline __m512i clamp_index(__m512i v, int hi) {
  return _mm512_min_epi32(_mm512_max_epi32(v, _mm512_setzero_si512()), _mm512_set1_epi32(hi));
}

void rows16(const KanLayerView& L, const Knots16& K, const float* xs, uint32_t* starts, uint8_t* b8, __m512& sum_out) {
  const int n = static_cast<int>(L.n_knots), k = static_cast<int>(L.spline_order), kp1 = k + 1;
  const __m512 x = _mm512_loadu_ps(xs);
  const __mmask16 inside = _mm512_cmp_ps_mask(x, _mm512_set1_ps(L.knots[0]), _CMP_GE_OQ) &
                           _mm512_cmp_ps_mask(x, _mm512_set1_ps(L.knots[n - 1]), _CMP_LT_OQ);
  __m512i j = _mm512_setzero_si512();
  for (int q = 1; q + 1 < n; ++q)
    j = _mm512_mask_add_epi32(j, _mm512_cmp_ps_mask(x, _mm512_set1_ps(L.knots[q]), _CMP_GE_OQ), j, _mm512_set1_epi32(1));
  j = _mm512_maskz_mov_epi32(inside, j);
  const __m512i jmk = _mm512_sub_epi32(j, _mm512_set1_epi32(k));
  __m512 tk[2 * kVectorOrder + 2];
  for (int o = 0; o <= 2 * k + 1; ++o)
    tk[o] = _mm512_permutex2var_ps(K.t0, clamp_index(_mm512_add_epi32(jmk, _mm512_set1_epi32(o)), n - 1), K.t1);
  __m512 local[kVectorOrder + 2];
  for (int r = 0; r <= kp1; ++r) local[r] = _mm512_setzero_ps();
  local[k] = _mm512_set1_ps(1.0f);
  for (int p = 1; p <= k; ++p) {
    for (int r = 0; r < kp1; ++r) {
      const __m512i m = _mm512_add_epi32(jmk, _mm512_set1_epi32(r));
      const __mmask16 valid = _mm512_cmp_epi32_mask(m, _mm512_setzero_si512(), _MM_CMPINT_NLT) &
                              _mm512_cmp_epi32_mask(m, _mm512_set1_epi32(n - 2 - p), _MM_CMPINT_LE);
      const __m512 im = _mm512_permutex2var_ps(K.i0[p - 1], clamp_index(m, n - 1), K.i1[p - 1]);
      const __m512 im1 = _mm512_permutex2var_ps(K.i0[p - 1], clamp_index(_mm512_add_epi32(m, _mm512_set1_epi32(1)), n - 1),
                                                K.i1[p - 1]);
      const __m512 left = _mm512_mul_ps(_mm512_sub_ps(x, tk[r]), im);
      const __m512 right = _mm512_mul_ps(_mm512_sub_ps(tk[r + p + 1], x), im1);
      const __m512 v = _mm512_add_ps(_mm512_mul_ps(left, local[r]), _mm512_mul_ps(right, local[r + 1]));
      local[r] = _mm512_maskz_mov_ps(valid, v);
    }
  }
  const int n_bases = n - 1 - k;
  const __m512i st = _mm512_maskz_mov_epi32(inside, clamp_index(jmk, n_bases - kp1));
  const __m512i shift = _mm512_sub_epi32(st, jmk);  // values[q] = local[q + shift]; 0 inside the grid
  __m512 values[kVectorOrder + 1];
  if ((_mm512_test_epi32_mask(shift, shift) & inside) == 0) {
    for (int q = 0; q < kp1; ++q) values[q] = _mm512_maskz_mov_ps(inside, local[q]);
  } else {
    for (int q = 0; q < kp1; ++q) {
      values[q] = _mm512_setzero_ps();
      for (int r = 0; r < kp1; ++r)
        values[q] = _mm512_mask_mov_ps(values[q], inside & _mm512_cmpeq_epi32_mask(shift, _mm512_set1_epi32(r - q)), local[r]);
    }
  }
  __m512 sum = _mm512_setzero_ps();
  for (int q = 0; q < kp1; ++q) sum = _mm512_add_ps(sum, values[q]);
  sum_out = sum;
  _mm512_storeu_si512(starts, st);
  const __m512 top = _mm512_set1_ps(255.0f), scale = _mm512_set1_ps(256.0f);
  __m512i u[kVectorOrder + 1];
  for (int q = 0; q < kp1; ++q)
    u[q] = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(values[q], scale), _mm512_setzero_ps()), top));
  const uint32_t bw = 2 * L.int8.pairs;
  if (bw == 4) {
    __m512i d = u[0];
    for (int q = 1; q < kp1; ++q) d = _mm512_or_si512(d, _mm512_slli_epi32(u[q], 8 * q));
    _mm512_storeu_si512(b8, d);
  } else {
    alignas(64) uint8_t tmp[kVectorOrder + 1][16];
    for (int q = 0; q < kp1; ++q) _mm_store_si128(reinterpret_cast<__m128i*>(tmp[q]), _mm512_cvtepi32_epi8(u[q]));
    for (int l = 0; l < 16; ++l) {
      for (int q = 0; q < kp1; ++q) b8[l * bw + q] = tmp[q][l];
      for (uint32_t q = kp1; q < bw; ++q) b8[l * bw + q] = 0;
    }
  }
}

void rows(const KanLayerView& L, const float* x, size_t r0, size_t r1, float* silu, uint8_t* b8, uint32_t* start,
          uint8_t* bsum8) {
  if (L.knot_stride != 0 || L.n_knots > kVectorKnots || L.spline_order > kVectorOrder || L.spline_order == 0)
    return int8_rows(L, x, r0, r1, silu, b8, start, bsum8);
  silu_block(x + r0, r1 - r0, silu + r0);
  const Knots16 K(L);
  const size_t in = L.in_features, in4 = int8_padded_inputs(L), bw = 2 * L.int8.pairs;
  size_t r = r0;
  for (; r + 16 <= r1; r += 16) {
    __m512 sum;
    rows16(L, K, x + r, start + r, b8 + r * bw, sum);
    const __m128i q8 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(
        _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(sum, _mm512_set1_ps(255.0f)), _mm512_setzero_ps()), _mm512_set1_ps(255.0f))));
    const size_t i = r % in;
    if (i + 16 <= in) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(bsum8 + (r / in) * in4 + i), q8);
    } else {
      alignas(16) uint8_t tmp[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), q8);
      for (size_t l = 0; l < 16; ++l) bsum8[((r + l) / in) * in4 + (r + l) % in] = tmp[l];
    }
  }
  for (; r < r1; ++r) int8_window_row(L, x, r, b8, start, bsum8);
}

template <uint32_t kPairs>
inline __m512i table_block32(const __m512i* b, const int8_t* w, uint32_t stride, uint32_t c0) {
  __m512i acc = _mm512_maddubs_epi16(b[0], _mm512_loadu_si512(w + static_cast<size_t>(c0) * 2));
  for (uint32_t p = 1; p < kPairs; ++p)
    acc = _mm512_add_epi16(acc, _mm512_maddubs_epi16(b[p], _mm512_loadu_si512(w + (static_cast<size_t>(p) * stride + c0) * 2)));
  return _mm512_mulhrs_epi16(acc, _mm512_set1_epi16(128));
}

template <uint32_t kStride, uint32_t kPairs>
void table_rows_t(const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint8_t* T) {
  const __m512i order = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* b = b8 + r * 2 * kPairs;
    __m512i bb[kPairs];
    for (uint32_t p = 0; p < kPairs; ++p) {
      uint16_t pair;
      std::memcpy(&pair, b + 2 * p, 2);
      bb[p] = _mm512_set1_epi16(static_cast<short>(pair));
    }
    const int8_t* w = L.int8.windows + static_cast<size_t>(start[r]) * kPairs * kStride * 2;
    uint8_t* t = T + r * kStride;
    if constexpr (kStride == 32) {
      const __m512i v = table_block32<kPairs>(bb, w, kStride, 0);
      const __m512i packed = _mm512_xor_si512(_mm512_permutexvar_epi64(order, _mm512_packs_epi16(v, v)), flip);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(t), _mm512_castsi512_si256(packed));
    } else {
      for (uint32_t c0 = 0; c0 < kStride; c0 += 64) {
        const __m512i v0 = table_block32<kPairs>(bb, w, kStride, c0), v1 = table_block32<kPairs>(bb, w, kStride, c0 + 32);
        _mm512_storeu_si512(t + c0, _mm512_xor_si512(_mm512_permutexvar_epi64(order, _mm512_packs_epi16(v0, v1)), flip));
      }
    }
  }
}

template <uint32_t kStride>
void table_rows_s(const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint8_t* T) {
  switch (L.int8.pairs) {
    case 1: return table_rows_t<kStride, 1>(L, b8, start, rows, T);
    case 2: return table_rows_t<kStride, 2>(L, b8, start, rows, T);
    case 3: return table_rows_t<kStride, 3>(L, b8, start, rows, T);
    case 4: return table_rows_t<kStride, 4>(L, b8, start, rows, T);
    default: return int8_table_rows(L, b8, start, rows, T);  // orders above 7: the portable loop
  }
}

// Table rows: vpmaddubsw of the broadcast B8 pairs with the codebook windows, vpaddw,
// vpmulhrsw by 128 (= (x + 128) >> 8, exactly), vpacksswb (the clamp), vpermq (the order
// vpacksswb interleaves), xor 0x80.
void table_rows(const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint8_t* T) {
  switch (L.int8.table_stride) {
    case 32: return table_rows_s<32>(L, b8, start, rows, T);
    case 64: return table_rows_s<64>(L, b8, start, rows, T);
    case 128: return table_rows_s<128>(L, b8, start, rows, T);
    default: return table_rows_s<256>(L, b8, start, rows, T);
  }
}

// ---- Record decode: a group record (EdgePanels.group 4) holds 4 inputs x 16 outputs as byte
// planes in [output][input] order (byte 4 l + j): indices, low and high bytes of the words.

// One field (bits [pos, pos + bits) of the 16-bit word) as a signed byte: output bit i is word
// bit pos + min(i, bits - 1), from the low byte L or the high byte H (GF(2) bit matrices; a
// plane the field does not touch has the zero matrix).
struct Field {
  __m512i from_lo, from_hi;
  Field(uint32_t pos, uint32_t bits) {
    uint64_t ml = 0, mh = 0;
    for (uint32_t i = 0; i < 8; ++i) {
      const uint32_t w = pos + std::min(i, bits - 1);
      const uint64_t row = static_cast<uint64_t>(7 - i) * 8;
      if (w < 8) ml |= (1ull << w) << row;
      else mh |= (1ull << (w - 8)) << row;
    }
    from_lo = _mm512_set1_epi64(static_cast<long long>(ml));
    from_hi = _mm512_set1_epi64(static_cast<long long>(mh));
  }
  inline __m512i lo(__m512i l) const { return _mm512_gf2p8affine_epi64_epi8(l, from_lo, 0); }
  inline __m512i hi(__m512i h) const { return _mm512_gf2p8affine_epi64_epi8(h, from_hi, 0); }
  inline __m512i both(__m512i l, __m512i h) const { return _mm512_xor_si512(lo(l), hi(h)); }
};

constexpr uint32_t kGroupBytes = kPanelWidth * kInt8Group * 3;  // index plane + two word planes

// kBaseBoth: the base weight has bits in the low byte too (gain + bias bits < 8); otherwise
// (the default 6/4/5) it is all in the high byte: one vgf2p8affineqb. The gain is always in
// the low byte, the bias is taken from both (a zero matrix where it has no bits).
template <bool kBaseBoth>
struct Decoder {
  Field gain, bias, base;
  explicit Decoder(const KanLayerView& L)
      : gain(0, L.gain.bits), bias(L.gain.bits, L.bias.bits), base(L.gain.bits + L.bias.bits, L.base.bits) {}
  inline void decode(const uint8_t* rec, __m512i& X, __m512i& G, __m512i& B, __m512i& W) const {
    X = _mm512_loadu_si512(rec);
    const __m512i l = _mm512_loadu_si512(rec + 64), h = _mm512_loadu_si512(rec + 128);
    G = gain.lo(l);
    B = bias.both(l, h);
    W = kBaseBoth ? base.both(l, h) : base.hi(h);
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

// ---- Lane path: NP panels over the groups of inputs [i0, i1) (i0 a multiple of 4), the
// accumulators in acc (3 x 16 int32 per panel: gain, bias, base).
template <uint32_t kStride, bool kBaseBoth, int NP>
void lane_block(const KanLayerView& L, const Decoder<kBaseBoth>& dec, const Int8Sample& S, uint32_t p, uint32_t i0,
                uint32_t i1, int32_t* acc) {
  const size_t groups = (L.in_features + kInt8Group - 1) / kInt8Group;
  __m512i ag[NP], ab[NP], aw[NP];
  const uint8_t* rec[NP];
  for (int q = 0; q < NP; ++q) {
    ag[q] = _mm512_loadu_si512(acc + (3 * q + 0) * 16);
    ab[q] = _mm512_loadu_si512(acc + (3 * q + 1) * 16);
    aw[q] = _mm512_loadu_si512(acc + (3 * q + 2) * 16);
    rec[q] = L.edges + ((p + q) * groups + i0 / kInt8Group) * kGroupBytes;
  }
  Lookup<kStride> table;
  for (uint32_t g = i0; g < i1; g += kInt8Group) {
    table.load(S.table + static_cast<size_t>(g) * kStride);
    const __m512i bs = broadcast4(S.bsum8 + g), us = broadcast4(S.silu8 + g);
    for (int q = 0; q < NP; ++q) {
      _mm_prefetch(reinterpret_cast<const char*>(rec[q] + kPrefetchAhead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(rec[q] + kPrefetchAhead + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(rec[q] + kPrefetchAhead + 128), _MM_HINT_T0);
      __m512i X, G, B, W;
      dec.decode(rec[q], X, G, B, W);
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

template <uint32_t kStride, bool kBaseBoth>
void lane_panels(const KanLayerView& L, const Int8Sample& S, uint32_t p0, uint32_t p1, float* y) {
  const uint32_t in = L.in_features;
  // No input blocks: each group of panels streams its 4 records end to end (long streams the
  // prefetchers follow; cold runs were 7% faster than with 32 KB table blocks) and reads the
  // sample's table (K = 128: 256 KB for 2048 inputs) from L2.
  const uint32_t IB = in;
  const Decoder<kBaseBoth> dec(L);
  alignas(64) int32_t acc[kLaneChunkPanels * 3 * 16];
  for (uint32_t c0 = p0; c0 < p1; c0 += kLaneChunkPanels) {
    const uint32_t c1 = std::min(p1, c0 + kLaneChunkPanels);
    std::memset(acc, 0, sizeof acc);
    for (uint32_t i0 = 0; i0 < in; i0 += IB) {
      const uint32_t i1 = std::min(in, i0 + IB);
      uint32_t p = c0;
      for (; p + kLanePanels <= c1; p += kLanePanels)
        lane_block<kStride, kBaseBoth, kLanePanels>(L, dec, S, p, i0, i1, acc + (p - c0) * 48);
      for (; p < c1; ++p) lane_block<kStride, kBaseBoth, 1>(L, dec, S, p, i0, i1, acc + (p - c0) * 48);
    }
    for (uint32_t p = c0; p < c1; ++p) {
      const int32_t* a = acc + (p - c0) * 48;
      store_outputs(L, p, _mm512_load_si512(a), _mm512_load_si512(a + 16), _mm512_load_si512(a + 32), S.lo, S.sx, y);
    }
  }
}

// The value words' base weight reaches into the low byte.
inline bool base_both(const KanLayerView& L) { return L.gain.bits + L.bias.bits < 8; }

template <bool kBaseBoth>
void lane_any(const KanLayerView& L, const Int8Sample& S, uint32_t p0, uint32_t p1, float* y) {
  switch (L.int8.table_stride) {
    case 32: return lane_panels<32, kBaseBoth>(L, S, p0, p1, y);
    case 64: return lane_panels<64, kBaseBoth>(L, S, p0, p1, y);
    case 128: return lane_panels<128, kBaseBoth>(L, S, p0, p1, y);
    default: return lane_panels<256, kBaseBoth>(L, S, p0, p1, y);
  }
}

void lane(const KanLayerView& L, const Int8Sample& S, uint32_t p0, uint32_t p1, float* y) {
  if (L.word_bytes != 2) return int8_lane(L, S, p0, p1, y);  // 32-bit words: the portable loops
  if (base_both(L)) lane_any<true>(L, S, p0, p1, y);
  else lane_any<false>(L, S, p0, p1, y);
}

// ---- Batch path: per block of kInt8BatchBlock inputs, the group's table rows are built into
// the scratch, each group of kInt8BatchPanels panels is decoded once into the scratch, and
// every sample then streams the decoded block with its own table rows.
template <uint32_t kStride, int NP>
void batch_panels_block(const Int8Batch& Bt, const Int8BatchScratch& sc, uint32_t np, uint32_t pq, uint32_t i0,
                        uint32_t groups, uint32_t in4) {
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

template <uint32_t kStride, bool kBaseBoth>
void batch_panels(const KanLayerView& L, const Int8Batch& Bt, uint32_t p0, uint32_t p1, uint8_t* scratch, float* y) {
  const uint32_t in = L.in_features, np = p1 - p0, in4 = int8_padded_inputs(L), out = L.out_features;
  const size_t all_groups = in4 / kInt8Group;
  const Decoder<kBaseBoth> dec(L);
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
        const uint8_t* rec = L.edges + ((p0 + pq + q) * all_groups + i0 / kInt8Group) * kGroupBytes;
        for (uint32_t g = 0; g < groups; ++g, rec += kGroupBytes) {
          __m512i X, G, B, W;
          dec.decode(rec, X, G, B, W);
          uint8_t* d = sc.decoded + (static_cast<size_t>(q) * (kInt8BatchBlock / kInt8Group) + g) * 256;
          _mm512_store_si512(d, X);
          _mm512_store_si512(d + 64, G);
          _mm512_store_si512(d + 128, B);
          _mm512_store_si512(d + 192, W);
        }
      }
      switch (nq) {
        case 4: batch_panels_block<kStride, 4>(Bt, sc, np, pq, i0, groups, in4); break;
        case 3: batch_panels_block<kStride, 3>(Bt, sc, np, pq, i0, groups, in4); break;
        case 2: batch_panels_block<kStride, 2>(Bt, sc, np, pq, i0, groups, in4); break;
        default: batch_panels_block<kStride, 1>(Bt, sc, np, pq, i0, groups, in4); break;
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

template <bool kBaseBoth>
void batch_any(const KanLayerView& L, const Int8Batch& B, uint32_t p0, uint32_t p1, uint8_t* scratch, float* y) {
  switch (L.int8.table_stride) {
    case 32: return batch_panels<32, kBaseBoth>(L, B, p0, p1, scratch, y);
    case 64: return batch_panels<64, kBaseBoth>(L, B, p0, p1, scratch, y);
    case 128: return batch_panels<128, kBaseBoth>(L, B, p0, p1, scratch, y);
    default: return batch_panels<256, kBaseBoth>(L, B, p0, p1, scratch, y);
  }
}

void batch(const KanLayerView& L, const Int8Batch& B, uint32_t p0, uint32_t p1, uint8_t* scratch, float* y) {
  if (L.word_bytes != 2) return int8_batch(L, B, p0, p1, scratch, y);
  if (base_both(L)) batch_any<true>(L, B, p0, p1, scratch, y);
  else batch_any<false>(L, B, p0, p1, scratch, y);
}

}  // namespace

const KernelOps& ops() {
  static const KernelOps k = [] {
    KernelOps o = avx512::ops();
    o.silu_q8 = &silu_block;
    o.int8_rows = &rows;
    o.int8_quantize = &quantize_silu;
    o.int8_table = [](const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint32_t first, uint8_t* T) {
      table_rows(L, b8, start, rows, T + static_cast<size_t>(first) * L.int8.table_stride);
    };
    o.int8_lane = &lane;
    o.int8_batch = &batch;
    return o;
  }();
  return k;
}

}  // namespace avx512vnni
}  // namespace lutham
