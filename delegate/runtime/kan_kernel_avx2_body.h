// The AVX2 + FMA hot loops (8 lanes per register), written once and compiled twice: by
// kan_kernel_avx2.cpp (-mavx2 -mfma) and inside kan_kernel_avx512.cpp (namespace ymm), whose
// sample path and B-spline windows are these loops built with AVX-512VL, so that the
// compiler can fold each broadcast into its fma (the same operations, so the same bits).
// Include inside the variant's namespace, after kan_kernel_impl.h. No include guard.
namespace {

// Output chains the sample path keeps in registers: AVX2 has 16 ymm registers, so 4 (with
// the loop's operands); built with AVX-512VL (32 registers) all 16 of a panel.
#ifdef __AVX512VL__
constexpr uint32_t kSampleChains = 16;
#else
constexpr uint32_t kSampleChains = 4;
#endif

// Decodes half h (lanes 8h .. 8h+7) of a panel record.
template <typename IndexT, typename WordT, bool kFloat>
struct Decoder {
  __m128i gain_left, gain_right, bias_left, bias_right, base_left, base_right;

  explicit Decoder(const KanLayerView& L) {
    const uint32_t gb = L.gain.bits, bb = L.bias.bits, wb = L.base.bits;
    gain_left = _mm_cvtsi32_si128(static_cast<int>(32 - gb));
    gain_right = _mm_cvtsi32_si128(static_cast<int>(32 - gb));
    bias_left = _mm_cvtsi32_si128(static_cast<int>(32 - gb - bb));
    bias_right = _mm_cvtsi32_si128(static_cast<int>(32 - bb));
    base_left = _mm_cvtsi32_si128(static_cast<int>(32 - gb - bb - wb));
    base_right = _mm_cvtsi32_si128(static_cast<int>(32 - wb));
  }

  static inline __m256i index(const uint8_t* rec, int h) {
    if constexpr (sizeof(IndexT) == 1) {
      return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(rec + 8 * h)));
    } else {
      return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + 16 * h)));
    }
  }

  // g, b, w = float(q) * scale (or the stored floats).
  inline void values(const uint8_t* rec, int h, const __m256* gs, const __m256* bs, const __m256* ws, __m256& g,
                     __m256& b, __m256& w) const {
    const uint8_t* v = rec + kPanelWidth * sizeof(IndexT);
    if constexpr (kFloat) {
      const float* f = reinterpret_cast<const float*>(v);
      g = _mm256_loadu_ps(f + 8 * h);
      b = _mm256_loadu_ps(f + kPanelWidth + 8 * h);
      w = _mm256_loadu_ps(f + 2 * kPanelWidth + 8 * h);
    } else {
      __m256i word;
      if constexpr (sizeof(WordT) == 2) {
        word = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + 16 * h)));
      } else {
        word = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 32 * h));
      }
      g = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sra_epi32(_mm256_sll_epi32(word, gain_left), gain_right)), gs[h]);
      b = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sra_epi32(_mm256_sll_epi32(word, bias_left), bias_right)), bs[h]);
      w = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sra_epi32(_mm256_sll_epi32(word, base_left), base_right)), ws[h]);
    }
  }
};

// The fields of a 16-bit edge word (gain, bias, base at bits [pos, pos + bits), two's
// complement), each turned into float(q) * 2^pos without a vector shift or int -> float
// conversion. One xor for the whole word flips every field's sign bit (two's complement ->
// offset binary, v = q + 2^(bits-1)) and plants the exponent of 2^23 above the 16 bits; then
// per field, masking keeps that exponent and the field, which reads as the float
// 2^23 + v * 2^pos, and one subtraction of 2^23 + 2^(bits-1) * 2^pos leaves q * 2^pos. Every
// step is exact (all values < 2^23), and multiplying by the pre-divided scale
// (scale * 2^-pos, exact unless it underflows; checked per panel) gives float(q) * scale with
// the same single rounding as the shift decoder. Why: on AMD Zen 1 vector shifts issue on one
// FPU pipe, and the lane path is bound by issue slots.
constexpr uint32_t kExponent23 = 0x4B000000u;  // the float bits of 2^23

struct Field16 {
  __m256i mask;  // the field's bits and the exponent of 2^23
  __m256 offset;
  float unscale;  // 2^-pos
  float rescale;  // 2^pos
  Field16() = default;
  Field16(uint32_t pos, uint32_t bits) {
    if (bits == 0 || pos + bits > 16) {  // not a 16-bit word's field (float or 32-bit layers): unused
      mask = _mm256_setzero_si256();
      offset = _mm256_setzero_ps();
      unscale = rescale = 1.0f;
      return;
    }
    const uint32_t sign = 1u << (pos + bits - 1);
    mask = _mm256_set1_epi32(static_cast<int>(kExponent23 | (((1u << bits) - 1u) << pos)));
    offset = _mm256_set1_ps(8388608.0f + static_cast<float>(sign));
    unscale = std::ldexp(1.0f, -static_cast<int>(pos));
    rescale = std::ldexp(1.0f, static_cast<int>(pos));
  }
  // flipped: the word with Fields16::signs xor-ed in.
  inline __m256 times_2pos(__m256i flipped) const {
    return _mm256_sub_ps(_mm256_castsi256_ps(_mm256_and_si256(flipped, mask)), offset);
  }
};

struct Fields16 {
  Field16 gain, bias, base;
  __m256i signs;  // every field's sign bit and the exponent of 2^23
  explicit Fields16(const KanLayerView& L)
      : gain(0, L.gain.bits), bias(L.gain.bits, L.bias.bits), base(L.gain.bits + L.bias.bits, L.base.bits) {
    const uint32_t gb = L.gain.bits, bb = L.bias.bits, wb = L.base.bits;
    signs = gb + bb + wb <= 16 ? _mm256_set1_epi32(static_cast<int>(kExponent23 | (1u << (gb - 1)) |
                                                                   (1u << (gb + bb - 1)) | (1u << (gb + bb + wb - 1))))
                               : _mm256_setzero_si256();
  }
  // Half h of a record's words -> g, b, w; gs, bs, ws: the pre-divided scales (prescale).
  template <typename IndexT>
  inline void values(const uint8_t* rec, int h, const __m256* gs, const __m256* bs, const __m256* ws, __m256& g,
                     __m256& b, __m256& w) const {
    const uint8_t* v = rec + kPanelWidth * sizeof(IndexT);
    const __m256i word = _mm256_xor_si256(
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + 16 * h))), signs);
    g = _mm256_mul_ps(gain.times_2pos(word), gs[h]);
    b = _mm256_mul_ps(bias.times_2pos(word), bs[h]);
    w = _mm256_mul_ps(base.times_2pos(word), ws[h]);
  }
};

// Scales for Field16 (scale * 2^-pos); false when one of them would not be exact.
inline bool prescale(const Field16& f, const __m256* scales, __m256* out) {
  bool exact = true;
  for (int h = 0; h < 2; ++h) {
    out[h] = _mm256_mul_ps(scales[h], _mm256_set1_ps(f.unscale));
    const __m256 back = _mm256_mul_ps(out[h], _mm256_set1_ps(f.rescale));
    exact &= _mm256_movemask_ps(_mm256_cmp_ps(back, scales[h], _CMP_EQ_OQ)) == 0xFF;
  }
  return exact;
}

inline void load_scales(const KanLayerView& L, bool floats, uint32_t p, __m256* gs, __m256* bs, __m256* ws) {
  for (int h = 0; h < 2; ++h) {
    if (floats) {
      gs[h] = bs[h] = ws[h] = _mm256_set1_ps(1.0f);
    } else {
      gs[h] = _mm256_loadu_ps(L.gain.scales + p * kPanelWidth + 8 * h);
      bs[h] = _mm256_loadu_ps(L.bias.scales + p * kPanelWidth + 8 * h);
      ws[h] = _mm256_loadu_ps(L.base.scales + p * kPanelWidth + 8 * h);
    }
  }
}

// 8 table entries by index straight from the record: scalar loads beat vgatherdps on CPUs
// with slow microcoded gathers (AMD Zen 1/2), and cost about the same elsewhere.
template <typename IndexT>
inline __m256 lookup8(const float* row, const uint8_t* rec, int h) {
  IndexT ix[8];
  std::memcpy(ix, rec + 8 * h * sizeof(IndexT), sizeof ix);
  const __m128 lo = _mm_setr_ps(row[ix[0]], row[ix[1]], row[ix[2]], row[ix[3]]);
  const __m128 hi = _mm_setr_ps(row[ix[4]], row[ix[5]], row[ix[6]], row[ix[7]]);
  return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
}

// The coefficient term for 8 edges of one input: table row lookup, or the direct chain.
template <bool kTable, typename IndexT>
inline __m256 coefficient(const KanLayerView& L, const float* table_row_i, const float* basis_i, uint32_t start_i,
                          uint32_t width, __m256i idx, const uint8_t* rec, int h) {
  if constexpr (kTable) {
#ifdef LUTHAM_GATHER
    (void)rec; (void)h;
    return _mm256_i32gather_ps(table_row_i, idx, 4);
#else
    return lookup8<IndexT>(table_row_i, rec, h);
#endif
  } else {
    const size_t K = L.codebook_size;
    const float* col = L.codebook_columns + static_cast<size_t>(start_i) * K;
    __m256 d = _mm256_mul_ps(_mm256_broadcast_ss(basis_i), _mm256_i32gather_ps(col, idx, 4));
    for (uint32_t r = 1; r < width; ++r)
      d = _mm256_fmadd_ps(_mm256_broadcast_ss(basis_i + r), _mm256_i32gather_ps(col + r * K, idx, 4), d);
    return d;
  }
}

constexpr int kLanePanels = 2;

// Software prefetch distance along one panel's records, and how much of the next block's
// streams is fetched when a block starts.
constexpr size_t kPrefetchAhead = 1024;

// next: where the next block's first panel starts (its np panels follow at in_features
// records apart), or nullptr.
inline void prefetch_start(const uint8_t* next, const KanLayerView& L, int np) {
  if (next == nullptr) return;
  const size_t stride = static_cast<size_t>(L.in_features) * L.record_bytes;
  for (int q = 0; q < np; ++q)
    for (size_t b = 0; b < kPrefetchAhead; b += 64)
      _mm_prefetch(reinterpret_cast<const char*>(next + q * stride + b), _MM_HINT_T0);
}

// Lane path: inputs [i0, i1) of NP panels at once (2 x NP independent accumulation chains),
// continuing the chains held in acc_mem (16 floats per panel). kField16: 16-bit words decoded
// with Field16 (the caller checked that the panels' scales allow it).
template <typename IndexT, typename WordT, bool kFloat, bool kTable, int NP, bool kField16>
void lane_block(const KanLayerView& L, const float* silu, const float* bsum, const float* basis, const uint32_t* start,
                const float* P, uint32_t p, uint32_t i0, uint32_t i1, float* acc_mem, const uint8_t* next) {
  const uint32_t in = L.in_features, K = L.codebook_size, width = basis_width(L);
  const Decoder<IndexT, WordT, kFloat> dec(L);
  __m256 gs[NP][2], bs[NP][2], ws[NP][2], acc[NP][2];
  const uint8_t* rec[NP];
  const Fields16 fields(L);
  for (int q = 0; q < NP; ++q) {
    load_scales(L, kFloat, p + q, gs[q], bs[q], ws[q]);
    if constexpr (kField16) {
      prescale(fields.gain, gs[q], gs[q]);
      prescale(fields.bias, bs[q], bs[q]);
      prescale(fields.base, ws[q], ws[q]);
    }
    acc[q][0] = _mm256_loadu_ps(acc_mem + q * kPanelWidth);
    acc[q][1] = _mm256_loadu_ps(acc_mem + q * kPanelWidth + 8);
    rec[q] = L.edges + (static_cast<size_t>(p + q) * in + i0) * L.record_bytes;
  }
  // The next block's first records (other panels: a new stream the hardware prefetcher has
  // not seen yet) are fetched while this block runs; within the block, records kPrefetchAhead
  // bytes ahead of each stream.
  prefetch_start(next, L, NP);
  for (uint32_t i = i0; i < i1; ++i) {
    const __m256 si = _mm256_broadcast_ss(silu + i), bi = _mm256_broadcast_ss(bsum + i);
    const float* row = kTable ? P + static_cast<size_t>(i - i0) * K : nullptr;
    const float* basis_i = basis + static_cast<size_t>(i) * width;
    for (int q = 0; q < NP; ++q) {
      for (int h = 0; h < 2; ++h) {
        __m256 g, b, w;
        const __m256i idx = dec.index(rec[q], h);
        if constexpr (kField16) {
          fields.template values<IndexT>(rec[q], h, gs[q], bs[q], ws[q], g, b, w);
        } else {
          dec.values(rec[q], h, gs[q], bs[q], ws[q], g, b, w);
        }
        const __m256 d = coefficient<kTable, IndexT>(L, row, basis_i, kTable ? 0 : start[i], width, idx, rec[q], h);
        __m256 a = _mm256_fmadd_ps(w, si, acc[q][h]);
        a = _mm256_fmadd_ps(g, d, a);
        acc[q][h] = _mm256_fmadd_ps(b, bi, a);
      }
      _mm_prefetch(reinterpret_cast<const char*>(rec[q] + kPrefetchAhead), _MM_HINT_T0);
      rec[q] += L.record_bytes;
    }
  }
  for (int q = 0; q < NP; ++q) {
    _mm256_storeu_ps(acc_mem + q * kPanelWidth, acc[q][0]);
    _mm256_storeu_ps(acc_mem + q * kPanelWidth + 8, acc[q][1]);
  }
}

// Whether panels [p, p + n) can use Field16: 16-bit words whose pre-divided scales are exact.
template <typename WordT, bool kFloat>
inline bool use_field16(const KanLayerView& L, uint32_t p, uint32_t n) {
  if constexpr (kFloat || sizeof(WordT) != 2) {
    return false;
  } else {
    const Fields16 fields(L);
    bool ok = true;
    for (uint32_t q = 0; q < n; ++q) {
      __m256 gs[2], bs[2], ws[2], tmp[2];
      load_scales(L, false, p + q, gs, bs, ws);
      ok &= prescale(fields.gain, gs, tmp) && prescale(fields.bias, bs, tmp) && prescale(fields.base, ws, tmp);
    }
    return ok;
  }
}

template <typename IndexT, typename WordT, bool kFloat, bool kTable, int NP>
inline void lane_block_any(const KanLayerView& L, const float* silu, const float* bsum, const float* basis,
                           const uint32_t* start, const float* P, uint32_t p, uint32_t i0, uint32_t i1, float* acc_mem,
                           bool field16, const uint8_t* next) {
  if constexpr (!kFloat && sizeof(WordT) == 2) {
    if (field16) {
      lane_block<IndexT, WordT, kFloat, kTable, NP, true>(L, silu, bsum, basis, start, P, p, i0, i1, acc_mem, next);
      return;
    }
  }
  lane_block<IndexT, WordT, kFloat, kTable, NP, false>(L, silu, bsum, basis, start, P, p, i0, i1, acc_mem, next);
}

// Panels [p0, p1), a chunk of panels at a time, inputs in blocks (see lane_input_block).
template <typename IndexT, typename WordT, bool kFloat, bool kTable>
struct Lane {
  static void run(const KanLayerView& L, const float* silu, const float* bsum, const float* basis, const uint32_t* start,
                  float* P, uint32_t p0, uint32_t p1, float* y) {
    const uint32_t in = L.in_features, IB = lane_input_block(L);
    alignas(32) float chunk_acc[kLaneChunkPanels * kPanelWidth];
    for (uint32_t c0 = p0; c0 < p1; c0 += kLaneChunkPanels) {
      const uint32_t c1 = std::min(p1, c0 + kLaneChunkPanels);
      const bool field16 = use_field16<WordT, kFloat>(L, c0, c1 - c0);
      std::memset(chunk_acc, 0, sizeof chunk_acc);
      for (uint32_t i0 = 0; i0 < in; i0 += IB) {
        const uint32_t i1 = std::min(in, i0 + IB);
        if constexpr (kTable) table_block(L, basis, start, i0, i1, P);
        // Where the block after panel group p starts: the next group at i0, or the chunk's
        // first panels at the next input block, or the next chunk.
        auto next_block = [&](uint32_t p_next) -> const uint8_t* {
          if (p_next < c1) return L.edges + (static_cast<size_t>(p_next) * in + i0) * L.record_bytes;
          if (i1 < in) return L.edges + (static_cast<size_t>(c0) * in + i1) * L.record_bytes;
          if (c1 < p1) return L.edges + static_cast<size_t>(c1) * in * L.record_bytes;
          return nullptr;
        };
        uint32_t p = c0;
        for (; p + kLanePanels <= c1; p += kLanePanels)
          lane_block_any<IndexT, WordT, kFloat, kTable, kLanePanels>(L, silu, bsum, basis, start, P, p, i0, i1,
                                                                     chunk_acc + (p - c0) * kPanelWidth, field16,
                                                                     next_block(p + kLanePanels));
        for (; p < c1; ++p)
          lane_block_any<IndexT, WordT, kFloat, kTable, 1>(L, silu, bsum, basis, start, P, p, i0, i1,
                                                           chunk_acc + (p - c0) * kPanelWidth, field16, next_block(p + 1));
      }
      for (uint32_t p = c0; p < c1; ++p) {
        const uint32_t lanes = std::min(kPanelWidth, L.out_features - p * kPanelWidth);
        std::memcpy(y + p * kPanelWidth, chunk_acc + (p - c0) * kPanelWidth, lanes * sizeof(float));
      }
    }
  }
};

// 8 x 8 transpose: rows r[n] (8 floats each) -> columns written to out[c * 8 + n].
inline void transpose8(const __m256* r, float* out) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(out + 0, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(out + 16, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(out + 24, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(out + 32, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(out + 40, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(out + 48, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(out + 56, _mm256_permute2f128_ps(u3, u7, 0x31));
}

// Sample path with a coefficient table (see sample_panels in kan_kernel_impl.h for the
// scratch layout and the order of operations).
template <typename IndexT, typename WordT, bool kFloat>
void sample_table(const KanLayerView& L, const SamplePlan& S, uint32_t group, uint32_t p0, uint32_t p1, float* scratch,
                  float* y, size_t batch) {
  constexpr uint32_t G8 = kSampleGroup;
  const uint32_t in = L.in_features, K = L.codebook_size, width = basis_width(L), out = L.out_features;
  const uint32_t IB = S.input_block;
  const Decoder<IndexT, WordT, kFloat> dec(L);
  const SampleScratch sc = carve_sample_scratch(scratch, p1 - p0, IB, K, true);
  float *acc = sc.acc, *table = sc.table, *rows = sc.rows, *gv = sc.gain, *bv = sc.bias, *wv = sc.base;
  uint32_t* idx = sc.idx;
  std::memset(acc, 0, sizeof(float) * (p1 - p0) * kPanelWidth * G8);
  const size_t n0 = static_cast<size_t>(group) * G8;
  const float* siluT = S.silu_t + static_cast<size_t>(group) * in * G8;
  const float* bsumT = S.bsum_t + static_cast<size_t>(group) * in * G8;
  for (uint32_t i0 = 0; i0 < in; i0 += IB) {
    const uint32_t ib = std::min(IB, in - i0);
    for (uint32_t ii = 0; ii < ib; ++ii) {
      for (uint32_t n = 0; n < G8; ++n) {
        const size_t slot = (n0 + n) * in + i0 + ii;
        table_row(L.codebook_columns, K, S.basis + slot * width, S.start[slot], width, rows + static_cast<size_t>(n) * K);
      }
      float* t = table + static_cast<size_t>(ii) * K * G8;
      uint32_t c = 0;
      for (; c + 8 <= K; c += 8) {
        __m256 r[8];
        for (uint32_t n = 0; n < G8; ++n) r[n] = _mm256_loadu_ps(rows + static_cast<size_t>(n) * K + c);
        transpose8(r, t + static_cast<size_t>(c) * G8);
      }
      for (; c < K; ++c)
        for (uint32_t n = 0; n < G8; ++n) t[static_cast<size_t>(c) * G8 + n] = rows[static_cast<size_t>(n) * K + c];
    }
    for (uint32_t p = p0; p < p1; ++p) {
      __m256 gs[2], bs[2], ws[2];
      load_scales(L, kFloat, p, gs, bs, ws);
      const uint8_t* rec = L.edges + (static_cast<size_t>(p) * in + i0) * L.record_bytes;
      for (uint32_t ii = 0; ii < ib; ++ii, rec += L.record_bytes) {
        for (int h = 0; h < 2; ++h) {
          const size_t o = static_cast<size_t>(ii) * kPanelWidth + 8 * h;
          __m256 g, b, w;
          dec.values(rec, h, gs, bs, ws, g, b, w);
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + o), dec.index(rec, h));
          _mm256_storeu_ps(gv + o, g);
          _mm256_storeu_ps(bv + o, b);
          _mm256_storeu_ps(wv + o, w);
        }
      }
      float* accp = acc + static_cast<size_t>(p - p0) * kPanelWidth * G8;
      // kSampleChains outputs at a time: that many independent fma chains (each record's
      // three fmas are dependent, so four chains left the loop waiting on their latency).
      for (uint32_t l = 0; l < kPanelWidth; l += kSampleChains) {
        __m256 a[kSampleChains];
#pragma GCC unroll 16
        for (uint32_t j = 0; j < kSampleChains; ++j) a[j] = _mm256_loadu_ps(accp + (l + j) * G8);
        for (uint32_t ii = 0; ii < ib; ++ii) {
          const __m256 s = _mm256_loadu_ps(siluT + static_cast<size_t>(i0 + ii) * G8);
          const __m256 bsum = _mm256_loadu_ps(bsumT + static_cast<size_t>(i0 + ii) * G8);
          const float* t = table + static_cast<size_t>(ii) * K * G8;
#pragma GCC unroll 16
          for (uint32_t j = 0; j < kSampleChains; ++j) {
            const size_t o = static_cast<size_t>(ii) * kPanelWidth + l + j;
            const __m256 d = _mm256_loadu_ps(t + static_cast<size_t>(idx[o]) * G8);
            __m256 v = _mm256_fmadd_ps(_mm256_broadcast_ss(wv + o), s, a[j]);
            v = _mm256_fmadd_ps(_mm256_broadcast_ss(gv + o), d, v);
            a[j] = _mm256_fmadd_ps(_mm256_broadcast_ss(bv + o), bsum, v);
          }
        }
#pragma GCC unroll 16
        for (uint32_t j = 0; j < kSampleChains; ++j) _mm256_storeu_ps(accp + (l + j) * G8, a[j]);
      }
    }
  }
  const size_t samples = std::min<size_t>(G8, batch - n0);
  for (uint32_t p = p0; p < p1; ++p) {
    const uint32_t lanes = std::min(kPanelWidth, out - p * kPanelWidth);
    const float* accp = acc + static_cast<size_t>(p - p0) * kPanelWidth * G8;
    for (uint32_t l = 0; l < lanes; ++l)
      for (size_t n = 0; n < samples; ++n) y[(n0 + n) * out + p * kPanelWidth + l] = accp[l * G8 + n];
  }
}

template <typename IndexT, typename WordT, bool kFloat, bool kTable>
struct Sample {
  static void run(const KanLayerView& L, const SamplePlan& S, uint32_t group, uint32_t p0, uint32_t p1, float* scratch,
                  float* y, size_t batch) {
    if constexpr (kTable) {
      sample_table<IndexT, WordT, kFloat>(L, S, group, p0, p1, scratch, y, batch);
    } else {
      // Huge codebooks only (no table): the portable loop.
      sample_panels<IndexT, WordT, kFloat, false>(L, S, group, p0, p1, scratch, y, batch);
    }
  }
};

// bspline_window for 8 inputs at once (one per lane) on one shared knot row, operation for
// operation: the interval by counting knots <= x (the knots strictly increase, so it is the
// binary search's j), then Cox-de Boor with the knots gathered per lane, lanes whose basis
// index falls outside a level set to 0 as the scalar loop does, and the window shifted into
// place by per-lane selects. Inputs outside the extended grid (or NaN) give zeros, start 0.
void bspline8(const float* t, uint32_t n_knots, uint32_t k, const float* xs, float* values, uint32_t* starts,
              float* sums) {
  const uint32_t kp1 = k + 1;
  const __m256 x = _mm256_loadu_ps(xs);
  const __m256 zero = _mm256_setzero_ps();
  // Inside [t0, t_last): the same ordered comparisons as the scalar test (false for NaN).
  const __m256 inside = _mm256_and_ps(_mm256_cmp_ps(x, _mm256_set1_ps(t[0]), _CMP_GE_OQ),
                                      _mm256_cmp_ps(x, _mm256_set1_ps(t[n_knots - 1]), _CMP_LT_OQ));
  __m256i j = _mm256_setzero_si256();
  for (uint32_t q = 1; q + 1 < n_knots; ++q)
    j = _mm256_sub_epi32(j, _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_set1_ps(t[q]), _CMP_GE_OQ)));
  j = _mm256_and_si256(j, _mm256_castps_si256(inside));  // outside: j = 0 (results masked below)
  const __m256i kk = _mm256_set1_epi32(static_cast<int>(k));
  const __m256i jmk = _mm256_sub_epi32(j, kk);  // m of r = 0
  const __m256i max_index = _mm256_set1_epi32(static_cast<int>(n_knots - 1));
  // Knot reads: every t[m + c] the recursion needs (m = j - k + r, c = 0, 1, p, p + 1) is
  // t[clamp(j - k + o)] for o = r + c in 0 .. 2k + 1, so those 2k + 2 vectors are read once
  // (not 4 gathers per level and r). Up to 16 knots they come from two registers by
  // vpermps; the clamped index picks the register by its bit 3. Exact reads: same bits.
  const bool in_registers = n_knots <= 16;
  __m256 t_lo = zero, t_hi = zero;
  if (in_registers) {
    alignas(32) float padded[16] = {0};
    std::memcpy(padded, t, n_knots * sizeof(float));
    t_lo = _mm256_load_ps(padded);
    t_hi = _mm256_load_ps(padded + 8);
  }
  auto knot = [&](__m256i index) {
    const __m256i clamped = _mm256_min_epi32(_mm256_max_epi32(index, _mm256_setzero_si256()), max_index);
    if (in_registers) {
      const __m256 high = _mm256_castsi256_ps(_mm256_cmpgt_epi32(clamped, _mm256_set1_epi32(7)));
      return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t_lo, clamped), _mm256_permutevar8x32_ps(t_hi, clamped), high);
    }
    return _mm256_i32gather_ps(t, clamped, 4);
  };
  __m256 tk[2 * kMaxSplineOrder + 2];
  for (uint32_t o = 0; o < 2 * k + 2; ++o) tk[o] = knot(_mm256_add_epi32(jmk, _mm256_set1_epi32(static_cast<int>(o))));
  __m256 local[kMaxSplineOrder + 2];
  for (uint32_t r = 0; r <= kp1; ++r) local[r] = zero;
  local[k] = _mm256_set1_ps(1.0f);
  const int n_intervals = static_cast<int>(n_knots) - 1;
  for (uint32_t p = 1; p <= k; ++p) {
    const __m256i last = _mm256_set1_epi32(n_intervals - 1 - static_cast<int>(p));
    for (uint32_t r = 0; r < kp1; ++r) {
      const __m256i m = _mm256_add_epi32(jmk, _mm256_set1_epi32(static_cast<int>(r)));
      const __m256i out = _mm256_or_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), m), _mm256_cmpgt_epi32(m, last));
      const __m256 tm = tk[r], tmp = tk[r + p], tmp1 = tk[r + p + 1], tm1 = tk[r + 1];
      const __m256 left = _mm256_div_ps(_mm256_sub_ps(x, tm), _mm256_sub_ps(tmp, tm));
      const __m256 right = _mm256_div_ps(_mm256_sub_ps(tmp1, x), _mm256_sub_ps(tmp1, tm1));
      const __m256 v = _mm256_add_ps(_mm256_mul_ps(left, local[r]), _mm256_mul_ps(right, local[r + 1]));
      local[r] = _mm256_blendv_ps(v, zero, _mm256_castsi256_ps(out));
    }
  }
  // st = clamp(j - k, 0, n_bases - k - 1); values[q] = local[q + st - (j - k)] where that is 0..k.
  const __m256i st = _mm256_min_epi32(_mm256_max_epi32(jmk, _mm256_setzero_si256()),
                                      _mm256_set1_epi32(n_intervals - static_cast<int>(k) - static_cast<int>(kp1)));
  const __m256i shift = _mm256_sub_epi32(st, jmk);  // r = q + shift
  alignas(32) float v[kMaxSplineOrder + 1][8];
  __m256 sum = zero;
  for (uint32_t q = 0; q < kp1; ++q) {
    __m256 vq = zero;
    for (uint32_t r = 0; r < kp1; ++r) {
      const __m256i hit = _mm256_cmpeq_epi32(shift, _mm256_set1_epi32(static_cast<int>(r) - static_cast<int>(q)));
      vq = _mm256_blendv_ps(vq, local[r], _mm256_castsi256_ps(hit));
    }
    vq = _mm256_and_ps(vq, inside);
    sum = _mm256_add_ps(sum, vq);
    _mm256_store_ps(v[q], vq);
  }
  _mm256_storeu_ps(sums, _mm256_and_ps(sum, inside));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(starts), _mm256_and_si256(st, _mm256_castps_si256(inside)));
  if (kp1 == 4) {
    // Cubic splines (the default): the 4 x 8 -> 8 x 4 transpose in registers.
    const __m256 v0 = _mm256_load_ps(v[0]), v1 = _mm256_load_ps(v[1]), v2 = _mm256_load_ps(v[2]), v3 = _mm256_load_ps(v[3]);
    const __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
    const __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);  // lanes 0, 4 | 1, 5
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);  // lanes 2, 6 | 3, 7
    _mm256_storeu_ps(values, _mm256_permute2f128_ps(u0, u1, 0x20));
    _mm256_storeu_ps(values + 8, _mm256_permute2f128_ps(u2, u3, 0x20));
    _mm256_storeu_ps(values + 16, _mm256_permute2f128_ps(u0, u1, 0x31));
    _mm256_storeu_ps(values + 24, _mm256_permute2f128_ps(u2, u3, 0x31));
    return;
  }
  for (int l = 0; l < 8; ++l)
    for (uint32_t q = 0; q < kp1; ++q) values[l * kp1 + q] = v[q][l];
}

}  // namespace
