// The kernel's hot loops for x86-64 with AVX-512 F/BW/VL + FMA (built with -mavx512f -mavx512bw
// -mavx512vl -mfma; chosen at run time by kan_kernel.cpp only on CPUs that have them).
//
// Same arithmetic as kan_kernel_impl.h, operation for operation (int -> float conversion or
// the exact Field16 decode of the AVX2 variant, one multiply by the scale, the same fma chains
// in the same order), so the results are bit-identical to the generic and AVX2 variants. Only
// the schedule differs: a panel's 16 outputs are one zmm, so a record is decoded in one
// register (one index load, one word load, three fields) and its codebook terms come from one
// lookup; the panel's scales stay in registers for the whole input block.
#include <immintrin.h>

#include "kan_kernel_plan.h"

namespace lutham {
namespace avx512 {
#include "kan_kernel_impl.h"
#include "kan_kernel_int8.h"

namespace {

constexpr uint32_t kExponent23 = 0x4B000000u;  // the float bits of 2^23

// A 16-bit word's field as in the AVX2 variant's Field16 (float(q) * 2^pos without a shift
// or conversion, every step exact); here the sign flip and the mask are one vpternlogd.
struct Field16 {
  __m512i mask;  // the field's bits and the exponent of 2^23
  __m512 offset;
  float unscale, rescale;  // 2^-pos, 2^pos
  Field16() = default;
  Field16(uint32_t pos, uint32_t bits) {
    if (bits == 0 || pos + bits > 16) {  // not a 16-bit word's field: unused
      mask = _mm512_setzero_si512();
      offset = _mm512_setzero_ps();
      unscale = rescale = 1.0f;
      return;
    }
    const uint32_t sign = 1u << (pos + bits - 1);
    mask = _mm512_set1_epi32(static_cast<int>(kExponent23 | (((1u << bits) - 1u) << pos)));
    offset = _mm512_set1_ps(8388608.0f + static_cast<float>(sign));
    unscale = std::ldexp(1.0f, -static_cast<int>(pos));
    rescale = std::ldexp(1.0f, static_cast<int>(pos));
  }
  // (word ^ signs) & mask, read as a float, minus the offset: q * 2^pos.
  inline __m512 times_2pos(__m512i word, __m512i signs) const {
    return _mm512_sub_ps(_mm512_castsi512_ps(_mm512_ternarylogic_epi32(word, signs, mask, 0x28)), offset);
  }
  // scale * 2^-pos; false when it is not exact (then the shift decoder is used).
  inline bool prescale(__m512 scale, __m512& out) const {
    out = _mm512_mul_ps(scale, _mm512_set1_ps(unscale));
    const __m512 back = _mm512_mul_ps(out, _mm512_set1_ps(rescale));
    return _mm512_cmp_ps_mask(back, scale, _CMP_EQ_OQ) == 0xFFFF;
  }
};

// One panel's per-output scales (pre-divided for Field16), loaded once per input block.
struct Scales {
  __m512 g, b, w;
};

template <typename IndexT, typename WordT, bool kFloat, bool kField16>
struct Decoder {
  Field16 gain, bias, base;
  __m512i signs;
  __m128i gain_left, gain_right, bias_left, bias_right, base_left, base_right;

  explicit Decoder(const KanLayerView& L)
      : gain(0, L.gain.bits), bias(L.gain.bits, L.bias.bits), base(L.gain.bits + L.bias.bits, L.base.bits) {
    const uint32_t gb = L.gain.bits, bb = L.bias.bits, wb = L.base.bits;
    signs = gb + bb + wb <= 16 ? _mm512_set1_epi32(static_cast<int>(kExponent23 | (1u << (gb - 1)) |
                                                                   (1u << (gb + bb - 1)) | (1u << (gb + bb + wb - 1))))
                               : _mm512_setzero_si512();
    gain_left = _mm_cvtsi32_si128(static_cast<int>(32 - gb));
    gain_right = _mm_cvtsi32_si128(static_cast<int>(32 - gb));
    bias_left = _mm_cvtsi32_si128(static_cast<int>(32 - gb - bb));
    bias_right = _mm_cvtsi32_si128(static_cast<int>(32 - bb));
    base_left = _mm_cvtsi32_si128(static_cast<int>(32 - gb - bb - wb));
    base_right = _mm_cvtsi32_si128(static_cast<int>(32 - wb));
  }

  // The panel's scales; false when kField16 cannot be used for them.
  inline bool scales(const KanLayerView& L, uint32_t p, Scales& s) const {
    if constexpr (kFloat) {
      s.g = s.b = s.w = _mm512_set1_ps(1.0f);
      return true;
    } else {
      s.g = _mm512_loadu_ps(L.gain.scales + p * kPanelWidth);
      s.b = _mm512_loadu_ps(L.bias.scales + p * kPanelWidth);
      s.w = _mm512_loadu_ps(L.base.scales + p * kPanelWidth);
      if constexpr (kField16) {
        bool ok = gain.prescale(s.g, s.g);
        ok &= bias.prescale(s.b, s.b);
        ok &= base.prescale(s.w, s.w);
        return ok;
      }
      return true;
    }
  }

  static inline __m512i index(const uint8_t* rec) {
    if constexpr (sizeof(IndexT) == 1) {
      return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec)));
    } else {
      return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec)));
    }
  }

  // g, b, w = float(q) * scale (or the stored floats) for the record's 16 edges.
  inline void values(const uint8_t* rec, const Scales& s, __m512& g, __m512& b, __m512& w) const {
    const uint8_t* v = rec + kPanelWidth * sizeof(IndexT);
    if constexpr (kFloat) {
      const float* f = reinterpret_cast<const float*>(v);
      g = _mm512_loadu_ps(f);
      b = _mm512_loadu_ps(f + kPanelWidth);
      w = _mm512_loadu_ps(f + 2 * kPanelWidth);
    } else if constexpr (kField16) {
      const __m512i word = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v)));
      g = _mm512_mul_ps(gain.times_2pos(word, signs), s.g);
      b = _mm512_mul_ps(bias.times_2pos(word, signs), s.b);
      w = _mm512_mul_ps(base.times_2pos(word, signs), s.w);
    } else {
      __m512i word;
      if constexpr (sizeof(WordT) == 2) {
        word = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v)));
      } else {
        word = _mm512_loadu_si512(v);
      }
      g = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sra_epi32(_mm512_sll_epi32(word, gain_left), gain_right)), s.g);
      b = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sra_epi32(_mm512_sll_epi32(word, bias_left), bias_right)), s.b);
      w = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sra_epi32(_mm512_sll_epi32(word, base_left), base_right)), s.w);
    }
  }
};

// table_row (kan_kernel_impl.h) 16 codewords per register: the same chain per codeword.
void table_row512(const float* columns, uint32_t K, const float* basis, uint32_t start, uint32_t width, float* P) {
  const float* col = columns + static_cast<size_t>(start) * K;
  for (uint32_t c0 = 0; c0 < K; c0 += 16) {
    const __mmask16 m = K - c0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - c0)) - 1u);
    __m512 acc = _mm512_mul_ps(_mm512_set1_ps(basis[0]), _mm512_maskz_loadu_ps(m, col + c0));
    for (uint32_t r = 1; r < width; ++r)
      acc = _mm512_fmadd_ps(_mm512_set1_ps(basis[r]), _mm512_maskz_loadu_ps(m, col + static_cast<size_t>(r) * K + c0), acc);
    _mm512_mask_storeu_ps(P + c0, m, acc);
  }
}

void table_block512(const KanLayerView& L, const float* basis, const uint32_t* start, uint32_t i0, uint32_t i1, float* P) {
  const uint32_t K = L.codebook_size, width = basis_width(L);
  for (uint32_t i = i0; i < i1; ++i)
    table_row512(L.codebook_columns, K, basis + static_cast<size_t>(i) * width, start[i], width,
                 P + static_cast<size_t>(i - i0) * K);
}

// How a lane block reads its codebook terms.
enum class Lookup { Direct, Gather, Registers };

// Codebooks of up to this many words can be held in registers (8 zmm) for the lookup.
constexpr uint32_t kRegisterTableMax = 128;

// A table row of up to 128 entries in registers: entry c is lane c % 16 of reg[c / 16].
struct RegisterRow {
  __m512 reg[8];
  inline void load(const float* row, uint32_t K) {
    for (uint32_t q = 0; q < 8; ++q) {
      const uint32_t c0 = q * 16;
      const __mmask16 m = c0 >= K ? __mmask16(0) : K - c0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - c0)) - 1u);
      reg[q] = _mm512_maskz_loadu_ps(m, row + c0);
    }
  }
  // vpermt2ps picks from 32 entries by the index's low 5 bits; bits 5 and 6 pick the pair.
  template <uint32_t kRegs>
  inline __m512 lookup(__m512i idx) const {
    const __m512 r0 = _mm512_permutex2var_ps(reg[0], idx, reg[1]);
    if constexpr (kRegs <= 2) return r0;
    const __mmask16 b5 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32));
    const __m512 r1 = _mm512_permutex2var_ps(reg[2], idx, reg[3]);
    const __m512 lo = _mm512_mask_blend_ps(b5, r0, r1);
    if constexpr (kRegs <= 4) return lo;
    const __mmask16 b6 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(64));
    const __m512 r2 = _mm512_permutex2var_ps(reg[4], idx, reg[5]);
    const __m512 r3 = _mm512_permutex2var_ps(reg[6], idx, reg[7]);
    return _mm512_mask_blend_ps(b6, lo, _mm512_mask_blend_ps(b5, r2, r3));
  }
};

// Software prefetch distance along one panel's records, and how much of the next block's
// streams is fetched when a block starts (as in the AVX2 variant).
constexpr size_t kPrefetchAhead = 1024;

inline void prefetch_start(const uint8_t* next, const KanLayerView& L, int np) {
  if (next == nullptr) return;
  const size_t stride = static_cast<size_t>(L.in_features) * L.record_bytes;
  for (int q = 0; q < np; ++q)
    for (size_t b = 0; b < kPrefetchAhead; b += 64)
      _mm_prefetch(reinterpret_cast<const char*>(next + q * stride + b), _MM_HINT_T0);
}

// Lane path: inputs [i0, i1) of NP panels at once (NP independent fma chains: each record's
// three fmas are dependent, so one chain would wait on latency), continuing the chains held
// in acc_mem (16 floats per panel). kRegs: table registers for Lookup::Registers.
template <typename IndexT, typename WordT, bool kFloat, bool kField16, Lookup kLookup, uint32_t kRegs, int NP>
void lane_block(const KanLayerView& L, const float* silu, const float* bsum, const float* basis, const uint32_t* start,
                const float* P, uint32_t p, uint32_t i0, uint32_t i1, float* acc_mem, const uint8_t* next) {
  const uint32_t in = L.in_features, K = L.codebook_size, width = basis_width(L);
  const Decoder<IndexT, WordT, kFloat, kField16> dec(L);
  Scales sc[NP];
  __m512 acc[NP];
  const uint8_t* rec[NP];
  for (int q = 0; q < NP; ++q) {
    dec.scales(L, p + q, sc[q]);
    acc[q] = _mm512_loadu_ps(acc_mem + q * kPanelWidth);
    rec[q] = L.edges + (static_cast<size_t>(p + q) * in + i0) * L.record_bytes;
  }
  prefetch_start(next, L, NP);
  for (uint32_t i = i0; i < i1; ++i) {
    const __m512 si = _mm512_set1_ps(silu[i]), bi = _mm512_set1_ps(bsum[i]);
    const float* row = kLookup != Lookup::Direct ? P + static_cast<size_t>(i - i0) * K : nullptr;
    RegisterRow regs;
    if constexpr (kLookup == Lookup::Registers) regs.load(row, K);
    for (int q = 0; q < NP; ++q) {
      const __m512i idx = dec.index(rec[q]);
      __m512 g, b, w, d;
      dec.values(rec[q], sc[q], g, b, w);
      if constexpr (kLookup == Lookup::Gather) {
        d = _mm512_i32gather_ps(idx, row, 4);
      } else if constexpr (kLookup == Lookup::Registers) {
        d = regs.template lookup<kRegs>(idx);
      } else {
        const float* basis_i = basis + static_cast<size_t>(i) * width;
        const float* col = L.codebook_columns + static_cast<size_t>(start[i]) * K;
        d = _mm512_mul_ps(_mm512_set1_ps(basis_i[0]), _mm512_i32gather_ps(idx, col, 4));
        for (uint32_t r = 1; r < width; ++r)
          d = _mm512_fmadd_ps(_mm512_set1_ps(basis_i[r]), _mm512_i32gather_ps(idx, col + r * K, 4), d);
      }
      __m512 a = _mm512_fmadd_ps(w, si, acc[q]);
      a = _mm512_fmadd_ps(g, d, a);
      acc[q] = _mm512_fmadd_ps(b, bi, a);
      _mm_prefetch(reinterpret_cast<const char*>(rec[q] + kPrefetchAhead), _MM_HINT_T0);
      rec[q] += L.record_bytes;
    }
  }
  for (int q = 0; q < NP; ++q) _mm512_storeu_ps(acc_mem + q * kPanelWidth, acc[q]);
}

// Panels per lane block: enough independent chains to cover the fma latency.
constexpr int kLanePanels = 4;

#ifndef LUTHAM_AVX512_LOOKUP
#define LUTHAM_AVX512_LOOKUP 1  // 0: always gather; 1: registers for K <= 128
#endif

// Panels [p0, p1), a chunk of panels at a time, inputs in blocks (see lane_input_block).
template <typename IndexT, typename WordT, bool kFloat, bool kTable>
struct Lane {
  template <bool kField16, Lookup kLookup, uint32_t kRegs>
  static void chunk(const KanLayerView& L, const float* silu, const float* bsum, const float* basis,
                    const uint32_t* start, float* P, uint32_t c0, uint32_t c1, uint32_t p1, float* chunk_acc) {
    const uint32_t in = L.in_features, IB = lane_input_block(L);
    for (uint32_t i0 = 0; i0 < in; i0 += IB) {
      const uint32_t i1 = std::min(in, i0 + IB);
      if constexpr (kTable) table_block512(L, basis, start, i0, i1, P);
      auto next_block = [&](uint32_t p_next) -> const uint8_t* {
        if (p_next < c1) return L.edges + (static_cast<size_t>(p_next) * in + i0) * L.record_bytes;
        if (i1 < in) return L.edges + (static_cast<size_t>(c0) * in + i1) * L.record_bytes;
        if (c1 < p1) return L.edges + static_cast<size_t>(c1) * in * L.record_bytes;
        return nullptr;
      };
      uint32_t p = c0;
      for (; p + kLanePanels <= c1; p += kLanePanels)
        lane_block<IndexT, WordT, kFloat, kField16, kLookup, kRegs, kLanePanels>(
            L, silu, bsum, basis, start, P, p, i0, i1, chunk_acc + (p - c0) * kPanelWidth, next_block(p + kLanePanels));
      for (; p < c1; ++p)
        lane_block<IndexT, WordT, kFloat, kField16, kLookup, kRegs, 1>(
            L, silu, bsum, basis, start, P, p, i0, i1, chunk_acc + (p - c0) * kPanelWidth, next_block(p + 1));
    }
  }

  template <bool kField16>
  static void chunk_any(const KanLayerView& L, const float* silu, const float* bsum, const float* basis,
                        const uint32_t* start, float* P, uint32_t c0, uint32_t c1, uint32_t p1, float* chunk_acc) {
    const uint32_t K = L.codebook_size;
    if constexpr (!kTable) {
      chunk<kField16, Lookup::Direct, 0>(L, silu, bsum, basis, start, P, c0, c1, p1, chunk_acc);
    } else {
      if (LUTHAM_AVX512_LOOKUP && K <= 32) {
        chunk<kField16, Lookup::Registers, 2>(L, silu, bsum, basis, start, P, c0, c1, p1, chunk_acc);
      } else if (LUTHAM_AVX512_LOOKUP && K <= 64) {
        chunk<kField16, Lookup::Registers, 4>(L, silu, bsum, basis, start, P, c0, c1, p1, chunk_acc);
      } else if (LUTHAM_AVX512_LOOKUP && K <= kRegisterTableMax) {
        chunk<kField16, Lookup::Registers, 8>(L, silu, bsum, basis, start, P, c0, c1, p1, chunk_acc);
      } else {
        chunk<kField16, Lookup::Gather, 0>(L, silu, bsum, basis, start, P, c0, c1, p1, chunk_acc);
      }
    }
  }

  static void run(const KanLayerView& L, const float* silu, const float* bsum, const float* basis, const uint32_t* start,
                  float* P, uint32_t p0, uint32_t p1, float* y) {
    alignas(64) float chunk_acc[kLaneChunkPanels * kPanelWidth];
    for (uint32_t c0 = p0; c0 < p1; c0 += kLaneChunkPanels) {
      const uint32_t c1 = std::min(p1, c0 + kLaneChunkPanels);
      std::memset(chunk_acc, 0, sizeof chunk_acc);
      bool field16 = false;
      if constexpr (!kFloat && sizeof(WordT) == 2) {
        // 16-bit words: the exact Field16 decode when every pre-divided scale is exact.
        const Decoder<IndexT, WordT, kFloat, true> dec(L);
        field16 = true;
        for (uint32_t p = c0; p < c1; ++p) {
          Scales s;
          field16 &= dec.scales(L, p, s);
        }
      }
      if (field16) {
        chunk_any<true>(L, silu, bsum, basis, start, P, c0, c1, p1, chunk_acc);
      } else {
        chunk_any<false>(L, silu, bsum, basis, start, P, c0, c1, p1, chunk_acc);
      }
      for (uint32_t p = c0; p < c1; ++p) {
        const uint32_t lanes = std::min(kPanelWidth, L.out_features - p * kPanelWidth);
        std::memcpy(y + p * kPanelWidth, chunk_acc + (p - c0) * kPanelWidth, lanes * sizeof(float));
      }
    }
  }
};

}  // namespace

// The AVX2 variant's loops built with this file's flags (AVX-512VL: each broadcast scale
// folds into its fma as an embedded broadcast): the B-spline windows and the sample path.
namespace ymm {
#include "kan_kernel_avx2_body.h"
}  // namespace ymm

const KernelOps& ops() {
  static const KernelOps k = {
      &ymm::bspline8,
      &table_row512,
      [](const KanLayerView& L, bool table, const float* silu, const float* bsum, const float* basis,
         const uint32_t* start, float* P, uint32_t p0, uint32_t p1, float* y) {
        with_layout<Lane>(L, table, silu, bsum, basis, start, P, p0, p1, y);
      },
      [](const KanLayerView& L, bool table, const SamplePlan& S, uint32_t group, uint32_t p0, uint32_t p1,
         float* scratch, float* y, size_t batch) {
        with_layout<ymm::Sample>(L, table, S, group, p0, p1, scratch, y, batch);
      },
      &int8_silu_block,
      &int8_rows,
      &int8_quantize_silu,
      &int8_table_row_major,
      &int8_lane,
      &int8_batch,
  };
  return k;
}

}  // namespace avx512
}  // namespace lutham
