// The int8 mode's loops with AVX2 alone (no VNNI, no byte permutes across 64 bytes): what
// x86-64 CPUs without AVX-512 VBMI/VNNI run (AMD Zen 1-3, Intel before Ice Lake). Included by
// kan_kernel_avx2.cpp inside namespace avx2, after kan_kernel_int8.h.
//
// Same integers as kan_kernel_int8.h, so bit-identical outputs. Per group record
// (EdgePanels.group 4: 4 inputs x 16 outputs as [output][input] byte planes: indices, low and
// high bytes of the value words):
//  - the 64 indices are transposed to two registers, inputs 0|1 and 2|3 (one input per
//    128-bit lane), so that vpshufb reads each input's own table row: a row of K <= 128 is
//    8 chunks of 16 bytes, every chunk is looked up (vpshufb uses the low 4 bits) and
//    vpblendvb keeps the right one, by index bits 4, 5, 6 (a tree of 7 blends; 256-entry rows
//    use bit 7 too); the values are transposed back to [output][input] order;
//  - gain, bias and base are cut out of the word planes with 16-bit shifts and byte masks and
//    sign-extended (x ^ s) - s;
//  - vpmaddubsw (u8 table value x s8 field, two inputs, exact: |field| <= 64 keeps the pair
//    sum inside int16) then vpmaddwd by 1 (the other two inputs) gives each output's sum of 4
//    products in int32, as vpdpbusd does.
// Fields wider than 7 bits and 32-bit words take the portable loops.
namespace {

constexpr uint32_t kI8Plane = kPanelWidth * kInt8Group;  // 64 bytes
constexpr uint32_t kI8GroupBytes = 3 * kI8Plane;

// A field (bits [pos, pos + bits) of the 16-bit word) as bytes from the low (L) and high (H)
// byte planes: 16-bit shifts move bits across the two bytes of a pair and the masks drop what
// came from the neighbour (a mask is 0 where the field has no bits). Then x ^ s (s = the
// field's sign bit) is the field in offset binary, q + s in [0, 2^bits); minus s it is q.
struct FieldAvx2 {
  uint32_t pos = 0, bits = 1;
  __m128i lo, hr, hl;
  __m256i lo_mask, hi_mask, sign;
  FieldAvx2() = default;
  FieldAvx2(uint32_t pos_, uint32_t bits_) : pos(pos_), bits(bits_) {
    const uint32_t full = (1u << bits) - 1u;
    const uint32_t lm = pos < 8 ? full & ((1u << (8 - pos)) - 1u) : 0u;
    lo = _mm_cvtsi32_si128(static_cast<int>(std::min<uint32_t>(pos, 8)));
    hr = _mm_cvtsi32_si128(static_cast<int>(pos < 8 ? 0 : pos - 8));
    hl = _mm_cvtsi32_si128(static_cast<int>(pos < 8 ? 8 - pos : 0));
    lo_mask = _mm256_set1_epi8(static_cast<char>(lm));
    hi_mask = _mm256_set1_epi8(static_cast<char>(full & ~lm));
    sign = _mm256_set1_epi8(static_cast<char>(1u << (bits - 1)));
  }
  uint32_t offset() const { return 1u << (bits - 1); }
  // Offset binary, any position.
  inline __m256i offset_any(__m256i L, __m256i H) const {
    const __m256i l = _mm256_and_si256(_mm256_srl_epi16(L, lo), lo_mask);
    const __m256i h = _mm256_and_si256(_mm256_sll_epi16(_mm256_srl_epi16(H, hr), hl), hi_mask);
    return _mm256_xor_si256(_mm256_or_si256(l, h), sign);
  }
  // The gain: bits [0, bits) of the low byte, sign-extended.
  inline __m256i signed_low(__m256i L) const { return _mm256_sub_epi8(_mm256_xor_si256(_mm256_and_si256(L, lo_mask), sign), sign); }
};

// The word decoders decode_record takes: gain (signed), bias and base (offset binary) of 32
// edges from their low and high bytes. WordsAny reads any layout (shift counts and masks in
// registers); Words<G, B, W> is one layout with immediate shifts and constant masks, which
// leaves the registers to the lookups (the default 6/4/5 words: 10% fewer instructions, no
// spills).
struct WordsAny {
  FieldAvx2 g, b, w;
  explicit WordsAny(const KanLayerView& L)
      : g(0, L.gain.bits), b(L.gain.bits, L.bias.bits), w(L.gain.bits + L.bias.bits, L.base.bits) {}
  inline __m256i gain(__m256i L) const { return g.signed_low(L); }
  inline __m256i bias(__m256i L, __m256i H) const { return b.offset_any(L, H); }
  inline __m256i base(__m256i L, __m256i H) const { return w.offset_any(L, H); }
  uint32_t bias_offset() const { return b.offset(); }
  uint32_t base_offset() const { return w.offset(); }
};

template <uint32_t G, uint32_t B, uint32_t W>
struct Words {
  static_assert(G + B > 8 && G + B + W <= 16 && G < 8, "the bias spans both bytes, the base is in the high byte");
  explicit Words(const KanLayerView&) {}
  static inline __m256i gain(__m256i L) {
    const __m256i s = _mm256_set1_epi8(1 << (G - 1));
    return _mm256_sub_epi8(_mm256_xor_si256(_mm256_and_si256(L, _mm256_set1_epi8((1 << G) - 1)), s), s);
  }
  static inline __m256i bias(__m256i L, __m256i H) {
    constexpr uint32_t lm = (1u << (8 - G)) - 1u, hm = ((1u << B) - 1u) & ~lm;
    const __m256i l = _mm256_and_si256(_mm256_srli_epi16(L, G), _mm256_set1_epi8(static_cast<char>(lm)));
    const __m256i h = _mm256_and_si256(_mm256_slli_epi16(H, 8 - G), _mm256_set1_epi8(static_cast<char>(hm)));
    return _mm256_xor_si256(_mm256_or_si256(l, h), _mm256_set1_epi8(static_cast<char>(1u << (B - 1))));
  }
  static inline __m256i base(__m256i, __m256i H) {
    const __m256i v = _mm256_and_si256(_mm256_srli_epi16(H, G + B - 8), _mm256_set1_epi8(static_cast<char>((1u << W) - 1u)));
    return _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(1u << (W - 1))));
  }
  static uint32_t bias_offset() { return 1u << (B - 1); }
  static uint32_t base_offset() { return 1u << (W - 1); }
};

// [output][input] <-> [input][output] within each 16-byte lane (its own inverse).
inline __m256i transpose4x4() {
  return _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7,
                          11, 15);
}

// Whether the exact vpmaddubsw formulation holds, 16-bit words with: gains of at most 7 bits
// (|q| <= 64: 2 x 255 x 64 <= 32767), biases and base weights of at most 6 (offset binary
// < 64: 2 x 255 x 63 <= 32767).
inline bool avx2_int8_fits(const KanLayerView& L) {
  return L.word_bytes == 2 && L.gain.bits >= 1 && L.gain.bits <= 7 && L.bias.bits >= 1 && L.bias.bits <= 6 &&
         L.base.bits >= 1 && L.base.bits <= 6;
}

// Indices I0 (outputs 0-7), I1 (outputs 8-15) -> Y01 (input 0 | input 1, 16 outputs each) and
// Y23 (inputs 2 | 3); to_outputs is the inverse, on the looked-up values. Output order inside
// a lane: 0-3, 8-11, 4-7, 12-15.
inline void to_inputs(__m256i I0, __m256i I1, __m256i& Y01, __m256i& Y23) {
  const __m256i a = _mm256_shuffle_epi8(I0, transpose4x4()), b = _mm256_shuffle_epi8(I1, transpose4x4());
  Y01 = _mm256_permute4x64_epi64(_mm256_unpacklo_epi32(a, b), 0xD8);
  Y23 = _mm256_permute4x64_epi64(_mm256_unpackhi_epi32(a, b), 0xD8);
}

inline void to_outputs(__m256i V01, __m256i V23, __m256i& O0, __m256i& O1) {
  const __m256 a = _mm256_castsi256_ps(_mm256_permute4x64_epi64(V01, 0xD8));
  const __m256 b = _mm256_castsi256_ps(_mm256_permute4x64_epi64(V23, 0xD8));
  O0 = _mm256_shuffle_epi8(_mm256_castps_si256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), transpose4x4());
  O1 = _mm256_shuffle_epi8(_mm256_castps_si256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), transpose4x4());
}

// The table's pair layout: per group of 4 inputs (4 x kStride bytes), inputs 0|1 then 2|3,
// each pair as 16-byte chunks [chunk k of the even input | chunk k of the odd one], so that
// one 32-byte load is the two inputs' chunk k in the two lanes of a register. Byte offset of
// input i's chunk 0.
template <uint32_t kStride>
inline size_t table_row_offset(uint32_t i) {
  return static_cast<size_t>(i / 4) * 4 * kStride + ((i % 4) / 2) * 2 * kStride + (i % 2) * 16;
}

// Values at the indices X (one input per lane) of an input pair's rows (pair: its chunk 0):
// every 16-byte chunk is looked up (vpshufb reads the low 4 bits) and a tree of vpblendvb
// keeps, by index bit 4, 5, ... (moved to bit 7), the right one.
template <uint32_t kStride>
inline __m256i lookup_pair(const uint8_t* pair, __m256i X) {
  constexpr uint32_t kChunks = kStride / 16;
  const __m256i lo4 = kStride > 128 ? _mm256_and_si256(X, _mm256_set1_epi8(0x0F)) : X;
  __m256i r[kChunks];
  for (uint32_t k = 0; k < kChunks; ++k)
    r[k] = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pair + 32 * k)), lo4);
  uint32_t n = kChunks;
  for (int bit = 4; n > 1; ++bit, n /= 2) {
    const __m256i m = bit == 7 ? X : _mm256_slli_epi16(X, 7 - bit);
    for (uint32_t k = 0; k < n / 2; ++k) r[k] = _mm256_blendv_epi8(r[2 * k], r[2 * k + 1], m);
  }
  return r[0];
}

inline __m256i broadcast4_avx2(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(static_cast<int>(v));
}

// Adds the 4-product sums of 8 outputs (one 32-byte half: u8 values x s8 fields) to acc.
inline __m256i dot4(__m256i acc, __m256i u8, __m256i s8) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u8, s8), _mm256_set1_epi16(1)));
}

// The fields of a group record, gain (signed), bias and base (offset binary), of outputs 0-7
// (h = 0) and 8-15 (h = 1): decoded from the record where they are used (the lane path: the
// decode after the lookups keeps the registers free for them), or read back from a
// DecodedRecord (the batch path, which decodes once for all its samples).
template <typename Dec>
struct RecordFields {
  const Dec& d;
  const uint8_t* rec;
  inline __m256i low(int h) const { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + kI8Plane + 32 * h)); }
  inline __m256i high(int h) const { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 2 * kI8Plane + 32 * h)); }
  inline __m256i gain(int h) const { return d.gain(low(h)); }
  inline __m256i bias(int h) const { return d.bias(low(h), high(h)); }
  inline __m256i base(int h) const { return d.base(low(h), high(h)); }
};

struct DecodedRecord {
  __m256i y01, y23, g[2], b[2], w[2];  // the transposed indices (inputs 0|1, 2|3), the fields
  inline __m256i gain(int h) const { return g[h]; }
  inline __m256i bias(int h) const { return b[h]; }
  inline __m256i base(int h) const { return w[h]; }
};
static_assert(sizeof(DecodedRecord) == 4 * 64, "int8_batch_scratch_bytes holds 4 x 64 bytes per decoded record");

inline void record_indices(const uint8_t* rec, __m256i& Y01, __m256i& Y23) {
  to_inputs(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec)), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 32)),
            Y01, Y23);
}

template <typename Dec>
inline DecodedRecord decode_record(const Dec& d, const uint8_t* rec) {
  DecodedRecord r;
  record_indices(rec, r.y01, r.y23);
  const RecordFields<Dec> f{d, rec};
  for (int h = 0; h < 2; ++h) {
    r.g[h] = f.gain(h);
    r.b[h] = f.bias(h);
    r.w[h] = f.base(h);
  }
  return r;
}

// One group record for one sample: acc[0..5] = gain, bias, base sums of outputs 0-7 and 8-15
// (gain lo, gain hi, bias lo, bias hi, base lo, base hi); the bias and base sums are of the
// offset-binary fields (store_panel_avx2 takes the offsets off). rows: the group's 4 table rows
// in the pair layout; Y01, Y23: the record's transposed indices; f: its fields.
template <uint32_t kStride, typename Fields>
inline void accumulate_record(const uint8_t* rows, __m256i Y01, __m256i Y23, const Fields& f, __m256i bs, __m256i us,
                              __m256i* acc) {
  __m256i V[2];
  to_outputs(lookup_pair<kStride>(rows, Y01), lookup_pair<kStride>(rows + 2 * kStride, Y23), V[0], V[1]);
  for (int h = 0; h < 2; ++h) {
    acc[h] = dot4(acc[h], V[h], f.gain(h));
    acc[2 + h] = dot4(acc[2 + h], bs, f.bias(h));
    acc[4 + h] = dot4(acc[4 + h], us, f.base(h));
  }
}

// Sum of a sample's padded bytes (bsum8 or silu8; the padding is 0).
inline uint32_t byte_sum(const uint8_t* v, uint32_t n) {
  uint32_t s = 0;
  for (uint32_t i = 0; i < n; ++i) s += v[i];
  return s;
}

// The three sums of a panel (acc as accumulate_record leaves them) -> its outputs (int8_output).
// bias_off, base_off: the offsets' share of the sums, offset x the sample's bsum8 / silu8 sum
// (the same for every output), taken off in wrapping uint32 as the sums are.
inline void store_panel_avx2(const KanLayerView& L, uint32_t p, const int32_t* acc, uint32_t bias_off, uint32_t base_off,
                             float lo, float sx, float* y) {
  const uint32_t lanes = std::min(kPanelWidth, L.out_features - p * kPanelWidth);
  for (uint32_t l = 0; l < lanes; ++l) {
    const uint32_t o = p * kPanelWidth + l;
    y[o] = int8_output(L, o, static_cast<uint32_t>(acc[l]), static_cast<uint32_t>(acc[16 + l]) - bias_off,
                       static_cast<uint32_t>(acc[32 + l]) - base_off, lo, sx);
  }
}

constexpr size_t kAvx2PrefetchAhead = 1024;

// One panel over the groups of inputs [i0, i1) (i0 a multiple of 4); table row i at
// table + (i - i0) * kStride; acc: 48 int32 (gain 16, bias 16, base 16, as accumulate_record keeps
// them: 0-7 then 8-15 of each).
template <uint32_t kStride, typename Dec>
void panel_avx2(const KanLayerView& L, const Dec& d, const uint8_t* table, const uint8_t* bsum8,
                const uint8_t* silu8, uint32_t p, uint32_t i0, uint32_t i1, int32_t* acc) {
  const size_t groups = (L.in_features + kInt8Group - 1) / kInt8Group;
  __m256i a[6];
  for (int k = 0; k < 6; ++k) a[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 8 * k));
  const uint8_t* rec = L.edges + (p * groups + i0 / kInt8Group) * kI8GroupBytes;
  for (uint32_t g = i0; g < i1; g += kInt8Group, rec += kI8GroupBytes) {
    _mm_prefetch(reinterpret_cast<const char*>(rec + kAvx2PrefetchAhead), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(rec + kAvx2PrefetchAhead + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(rec + kAvx2PrefetchAhead + 128), _MM_HINT_T0);
    __m256i Y01, Y23;
    record_indices(rec, Y01, Y23);
    accumulate_record<kStride>(table + static_cast<size_t>(g - i0) * kStride, Y01, Y23, RecordFields<Dec>{d, rec},
                               broadcast4_avx2(bsum8 + g), broadcast4_avx2(silu8 + g), a);
  }
  for (int k = 0; k < 6; ++k) _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 8 * k), a[k]);
}

template <uint32_t kStride, typename Dec>
void panel_range_avx2(const KanLayerView& L, const Dec& d, const uint8_t* table, const uint8_t* bsum8,
                      const uint8_t* silu8, uint32_t p0, uint32_t p1, uint32_t i0, uint32_t i1, int32_t* acc) {
  for (uint32_t p = p0; p < p1; ++p) panel_avx2<kStride, Dec>(L, d, table, bsum8, silu8, p, i0, i1, acc + (p - p0) * 48);
}

template <uint32_t kStride, typename Dec>
void lane_avx2_t(const KanLayerView& L, const Int8Sample& S, uint32_t p0, uint32_t p1, float* y) {
  const Dec d(L);
  const uint32_t in = L.in_features, in4 = int8_padded_inputs(L);
  const uint32_t bias_off = d.bias_offset() * byte_sum(S.bsum8, in4), base_off = d.base_offset() * byte_sum(S.silu8, in4);
  alignas(32) int32_t acc[kLaneChunkPanels * 48];
  for (uint32_t c0 = p0; c0 < p1; c0 += kLaneChunkPanels) {
    const uint32_t c1 = std::min(p1, c0 + kLaneChunkPanels);
    std::memset(acc, 0, sizeof acc);
    // No input blocks (as the avx512vnni lane path): long record streams for the prefetchers.
    panel_range_avx2<kStride, Dec>(L, d, S.table, S.bsum8, S.silu8, c0, c1, 0, in, acc);
    for (uint32_t p = c0; p < c1; ++p) store_panel_avx2(L, p, acc + (p - c0) * 48, bias_off, base_off, S.lo, S.sx, y);
  }
}

template <typename Dec>
void lane_avx2_s(const KanLayerView& L, const Int8Sample& S, uint32_t p0, uint32_t p1, float* y) {
  switch (L.int8.table_stride) {
    case 32: return lane_avx2_t<32, Dec>(L, S, p0, p1, y);
    case 64: return lane_avx2_t<64, Dec>(L, S, p0, p1, y);
    case 128: return lane_avx2_t<128, Dec>(L, S, p0, p1, y);
    default: return lane_avx2_t<256, Dec>(L, S, p0, p1, y);
  }
}

void int8_lane_avx2(const KanLayerView& L, const Int8Sample& S, uint32_t p0, uint32_t p1, float* y) {
  if (!avx2_int8_fits(L)) return int8_lane(L, S, p0, p1, y);
  if (L.gain.bits == 6 && L.bias.bits == 4 && L.base.bits == 5) lane_avx2_s<Words<6, 4, 5>>(L, S, p0, p1, y);
  else lane_avx2_s<WordsAny>(L, S, p0, p1, y);
}

// ---- Table rows: vpmaddubsw of the broadcast B8 pairs with the codebook windows (16
// codewords per register), vpaddw, vpmulhrsw by 128 (= (x + 128) >> 8 exactly), vpacksswb
// (the clamp), vpermq (vpacksswb's lane order), xor 0x80: kan_kernel_int8.h's int8_table_rows.
template <uint32_t kPairs>
inline __m256i table_block16(const __m256i* b, const int8_t* w, uint32_t stride, uint32_t c0) {
  __m256i acc = _mm256_maddubs_epi16(b[0], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + static_cast<size_t>(c0) * 2)));
  for (uint32_t p = 1; p < kPairs; ++p)
    acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(
                                    b[p], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (static_cast<size_t>(p) * stride + c0) * 2))));
  return _mm256_mulhrs_epi16(acc, _mm256_set1_epi16(128));
}

template <uint32_t kStride, uint32_t kPairs>
void table_rows_avx2_t(const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint32_t first, uint8_t* T) {
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* b = b8 + r * 2 * kPairs;
    __m256i bb[kPairs];
    for (uint32_t p = 0; p < kPairs; ++p) {
      uint16_t pair;
      std::memcpy(&pair, b + 2 * p, 2);
      bb[p] = _mm256_set1_epi16(static_cast<short>(pair));
    }
    const int8_t* w = L.int8.windows + static_cast<size_t>(start[r]) * kPairs * kStride * 2;
    uint8_t* t = T + table_row_offset<kStride>(first + static_cast<uint32_t>(r));
    for (uint32_t c0 = 0; c0 < kStride; c0 += 32) {
      const __m256i v0 = table_block16<kPairs>(bb, w, kStride, c0), v1 = table_block16<kPairs>(bb, w, kStride, c0 + 16);
      const __m256i packed = _mm256_xor_si256(_mm256_permute4x64_epi64(_mm256_packs_epi16(v0, v1), 0xD8), flip);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(t + 2 * c0), _mm256_castsi256_si128(packed));  // chunk c0 / 16
      _mm_storeu_si128(reinterpret_cast<__m128i*>(t + 2 * c0 + 32), _mm256_extracti128_si256(packed, 1));
    }
  }
}

// Orders above 7 (more than 4 pairs): the portable rows, one at a time into the pair layout.
template <uint32_t kStride>
void table_rows_portable_pairs(const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint32_t first,
                               uint8_t* T) {
  alignas(32) uint8_t row[kStride];
  for (size_t r = 0; r < rows; ++r) {
    int8_table_rows(L, b8 + r * 2 * L.int8.pairs, start + r, 1, row);
    uint8_t* t = T + table_row_offset<kStride>(first + static_cast<uint32_t>(r));
    for (uint32_t k = 0; k < kStride / 16; ++k) std::memcpy(t + 32 * k, row + 16 * k, 16);
  }
}

template <uint32_t kStride>
void table_rows_avx2_s(const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint32_t first, uint8_t* T) {
  switch (L.int8.pairs) {
    case 1: return table_rows_avx2_t<kStride, 1>(L, b8, start, rows, first, T);
    case 2: return table_rows_avx2_t<kStride, 2>(L, b8, start, rows, first, T);
    case 3: return table_rows_avx2_t<kStride, 3>(L, b8, start, rows, first, T);
    case 4: return table_rows_avx2_t<kStride, 4>(L, b8, start, rows, first, T);
    default: return table_rows_portable_pairs<kStride>(L, b8, start, rows, first, T);
  }
}

// KernelOps::int8_table: rows in the pair layout (table_row_offset), which int8_lane_avx2 and
// the batch loops read; layers that take the portable lane loops get row-major rows.
void int8_table_avx2(const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint32_t first, uint8_t* T) {
  if (!avx2_int8_fits(L)) return int8_table_row_major(L, b8, start, rows, first, T);
  switch (L.int8.table_stride) {
    case 32: return table_rows_avx2_s<32>(L, b8, start, rows, first, T);
    case 64: return table_rows_avx2_s<64>(L, b8, start, rows, first, T);
    case 128: return table_rows_avx2_s<128>(L, b8, start, rows, first, T);
    default: return table_rows_avx2_s<256>(L, b8, start, rows, first, T);
  }
}

// ---- Phase A: silu and the B8 windows, 8 rows at a time when the knots are shared: the
// avx512vnni variant's rows16 with 8 lanes (bspline_window_q8's operations in its order, so
// the same bits); knots and reciprocals are read from registers by vpermps (n_knots <= 16:
// two registers, <= 32: four).

inline __m256 silu8_avx2(__m256 x) {
  const __m256 neg = _mm256_xor_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN)));
  const __m256 v = _mm256_min_ps(_mm256_max_ps(neg, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  __m256 fx = _mm256_mul_ps(v, _mm256_set1_ps(1.44269504088896341f));
  fx = _mm256_sub_ps(_mm256_add_ps(fx, _mm256_set1_ps(12582912.0f)), _mm256_set1_ps(12582912.0f));
  __m256 r = _mm256_sub_ps(v, _mm256_mul_ps(fx, _mm256_set1_ps(0.693359375f)));
  r = _mm256_sub_ps(r, _mm256_mul_ps(fx, _mm256_set1_ps(-2.12194440e-4f)));
  const __m256 z = _mm256_mul_ps(r, r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_add_ps(_mm256_mul_ps(y, z), r);
  y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
  const __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  const __m256 e = _mm256_mul_ps(y, _mm256_castsi256_ps(n));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

void int8_silu_avx2(const float* x, size_t n, float* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, silu8_avx2(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) out[i] = silu_q8_scalar(x[i]);
}

constexpr uint32_t kAvx2VectorKnots = 32;
constexpr uint32_t kAvx2VectorOrder = 7;

// A row of up to 32 floats in 4 registers, read at 8 indices in [0, 32) by vpermps.
template <uint32_t kRegs>
struct Table32 {
  __m256 t[kRegs];
  void load(const float* v, uint32_t n) {
    alignas(32) float pad[kAvx2VectorKnots] = {0};
    std::memcpy(pad, v, n * sizeof(float));
    for (uint32_t q = 0; q < kRegs; ++q) t[q] = _mm256_load_ps(pad + 8 * q);
  }
  inline __m256 get(__m256i i) const {
    const __m256 b3 = _mm256_castsi256_ps(_mm256_slli_epi32(i, 28));  // index bit 3 -> sign
    const __m256 lo = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t[0], i), _mm256_permutevar8x32_ps(t[1], i), b3);
    if constexpr (kRegs == 2) {
      return lo;
    } else {
      const __m256 hi = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t[2], i), _mm256_permutevar8x32_ps(t[3], i), b3);
      return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(i, 27)));  // bit 4
    }
  }
};

template <uint32_t kRegs>
struct Knots8 {
  Table32<kRegs> t, inv[kAvx2VectorOrder];
  explicit Knots8(const KanLayerView& L) {
    t.load(L.knots, L.n_knots);
    for (uint32_t p = 0; p < L.spline_order; ++p) inv[p].load(L.int8.knot_inv + static_cast<size_t>(p) * L.n_knots, L.n_knots);
  }
};

inline __m256i clamp_index8(__m256i v, int hi) {
  return _mm256_min_epi32(_mm256_max_epi32(v, _mm256_setzero_si256()), _mm256_set1_epi32(hi));
}

inline __m256i to_u8_range(__m256 v) {
  return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(255.0f)));
}

// 8 rows: their B8 windows, starts and (returned) window sums.
template <uint32_t kRegs>
__m256 rows8_avx2(const KanLayerView& L, const Knots8<kRegs>& K, const float* xs, uint32_t* starts, uint8_t* b8) {
  const int n = static_cast<int>(L.n_knots), k = static_cast<int>(L.spline_order), kp1 = k + 1;
  const __m256 x = _mm256_loadu_ps(xs);
  const __m256i inside = _mm256_castps_si256(_mm256_and_ps(_mm256_cmp_ps(x, _mm256_set1_ps(L.knots[0]), _CMP_GE_OQ),
                                                           _mm256_cmp_ps(x, _mm256_set1_ps(L.knots[n - 1]), _CMP_LT_OQ)));
  __m256i j = _mm256_setzero_si256();
  for (int q = 1; q + 1 < n; ++q)  // j += (x >= t[q]): the mask is -1
    j = _mm256_sub_epi32(j, _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_set1_ps(L.knots[q]), _CMP_GE_OQ)));
  j = _mm256_and_si256(j, inside);
  const __m256i jmk = _mm256_sub_epi32(j, _mm256_set1_epi32(k));
  __m256 tk[2 * kAvx2VectorOrder + 2];
  for (int o = 0; o <= 2 * k + 1; ++o) tk[o] = K.t.get(clamp_index8(_mm256_add_epi32(jmk, _mm256_set1_epi32(o)), n - 1));
  __m256 local[kAvx2VectorOrder + 2];
  for (int r = 0; r <= kp1; ++r) local[r] = _mm256_setzero_ps();
  local[k] = _mm256_set1_ps(1.0f);
  for (int p = 1; p <= k; ++p) {
    for (int r = 0; r < kp1; ++r) {
      const __m256i m = _mm256_add_epi32(jmk, _mm256_set1_epi32(r));
      const __m256i valid = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), m),
                                                _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 1 - p), m));  // 0 <= m <= n - 2 - p
      const __m256 im = K.inv[p - 1].get(clamp_index8(m, n - 1));
      const __m256 im1 = K.inv[p - 1].get(clamp_index8(_mm256_add_epi32(m, _mm256_set1_epi32(1)), n - 1));
      const __m256 left = _mm256_mul_ps(_mm256_sub_ps(x, tk[r]), im);
      const __m256 right = _mm256_mul_ps(_mm256_sub_ps(tk[r + p + 1], x), im1);
      const __m256 v = _mm256_add_ps(_mm256_mul_ps(left, local[r]), _mm256_mul_ps(right, local[r + 1]));
      local[r] = _mm256_and_ps(v, _mm256_castsi256_ps(valid));
    }
  }
  const int n_bases = n - 1 - k;
  const __m256i st = _mm256_and_si256(clamp_index8(jmk, n_bases - kp1), inside);
  const __m256i shift = _mm256_sub_epi32(st, jmk);  // values[q] = local[q + shift]; 0 inside the grid
  __m256 values[kAvx2VectorOrder + 1];
  const __m256 in_f = _mm256_castsi256_ps(inside);
  if (_mm256_testz_si256(shift, inside)) {
    for (int q = 0; q < kp1; ++q) values[q] = _mm256_and_ps(local[q], in_f);
  } else {
    for (int q = 0; q < kp1; ++q) {
      values[q] = _mm256_setzero_ps();
      for (int r = 0; r < kp1; ++r) {
        const __m256 sel = _mm256_and_ps(in_f, _mm256_castsi256_ps(_mm256_cmpeq_epi32(shift, _mm256_set1_epi32(r - q))));
        values[q] = _mm256_blendv_ps(values[q], local[r], sel);
      }
    }
  }
  __m256 sum = _mm256_setzero_ps();
  for (int q = 0; q < kp1; ++q) sum = _mm256_add_ps(sum, values[q]);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(starts), st);
  __m256i u[kAvx2VectorOrder + 1] = {};
  for (int q = 0; q < kp1; ++q) u[q] = to_u8_range(_mm256_mul_ps(values[q], _mm256_set1_ps(256.0f)));
  const uint32_t bw = 2 * L.int8.pairs;
  if (bw == 4) {
    __m256i d = u[0];
    for (int q = 1; q < kp1; ++q) d = _mm256_or_si256(d, _mm256_slli_epi32(u[q], 8 * q));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b8), d);
  } else {
    alignas(32) int32_t tmp[kAvx2VectorOrder + 1][8];
    for (int q = 0; q < kp1; ++q) _mm256_store_si256(reinterpret_cast<__m256i*>(tmp[q]), u[q]);
    for (int l = 0; l < 8; ++l) {
      for (int q = 0; q < kp1; ++q) b8[l * bw + q] = static_cast<uint8_t>(tmp[q][l]);
      for (uint32_t q = kp1; q < bw; ++q) b8[l * bw + q] = 0;
    }
  }
  return sum;
}

template <uint32_t kRegs>
void rows_avx2_t(const KanLayerView& L, const float* x, size_t r0, size_t r1, float* silu, uint8_t* b8, uint32_t* start,
                 uint8_t* bsum8) {
  int8_silu_avx2(x + r0, r1 - r0, silu + r0);
  const Knots8<kRegs> K(L);
  const size_t in = L.in_features, in4 = int8_padded_inputs(L), bw = 2 * L.int8.pairs;
  size_t r = r0;
  for (; r + 8 <= r1; r += 8) {
    const __m256 sum = rows8_avx2<kRegs>(L, K, x + r, start + r, b8 + r * bw);
    alignas(32) int32_t q8[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(q8), to_u8_range(_mm256_mul_ps(sum, _mm256_set1_ps(255.0f))));
    for (size_t l = 0; l < 8; ++l) bsum8[((r + l) / in) * in4 + (r + l) % in] = static_cast<uint8_t>(q8[l]);
  }
  for (; r < r1; ++r) int8_window_row(L, x, r, b8, start, bsum8);
}

void int8_rows_avx2(const KanLayerView& L, const float* x, size_t r0, size_t r1, float* silu, uint8_t* b8, uint32_t* start,
                    uint8_t* bsum8) {
  if (L.knot_stride != 0 || L.n_knots > kAvx2VectorKnots || L.spline_order > kAvx2VectorOrder || L.spline_order == 0)
    return int8_rows(L, x, r0, r1, silu, b8, start, bsum8);
  if (L.n_knots <= 16) rows_avx2_t<2>(L, x, r0, r1, silu, b8, start, bsum8);
  else rows_avx2_t<4>(L, x, r0, r1, silu, b8, start, bsum8);
}

// ---- Batch path: per block of kInt8BatchBlock inputs, every sample's table rows are built into
// the scratch, each group of kInt8BatchPanels panels is decoded once into the scratch (the
// transposed indices and the three fields of each record: 8 x 32 bytes), and every sample then
// runs the decoded block with its own table rows: the decode is shared by the samples.
template <uint32_t kStride, typename Dec>
void batch_avx2_t(const KanLayerView& L, const Int8Batch& B, uint32_t p0, uint32_t p1, uint8_t* scratch, float* y) {
  const uint32_t in = L.in_features, np = p1 - p0, in4 = int8_padded_inputs(L);
  const size_t all_groups = in4 / kInt8Group, block_groups = kInt8BatchBlock / kInt8Group;
  const Int8BatchScratch sc = carve_int8_batch(L, B.samples, np, scratch);
  const Dec d(L);
  std::memset(sc.acc, 0, static_cast<size_t>(B.samples) * np * 48 * sizeof(int32_t));
  for (uint32_t i0 = 0; i0 < in; i0 += kInt8BatchBlock) {
    const uint32_t i1 = std::min(in, i0 + kInt8BatchBlock), groups = (i1 - i0 + kInt8Group - 1) / kInt8Group;
    for (uint32_t s = 0; s < B.samples; ++s) {
      const size_t row = static_cast<size_t>(s) * in + i0;
      table_rows_avx2_s<kStride>(L, B.b8 + row * 2 * L.int8.pairs, B.start + row, i1 - i0, 0,
                                 sc.tables + static_cast<size_t>(s) * kInt8BatchBlock * kStride);
    }
    for (uint32_t pq = 0; pq < np; pq += kInt8BatchPanels) {
      const uint32_t nq = std::min(kInt8BatchPanels, np - pq);
      for (uint32_t q = 0; q < nq; ++q) {
        const uint8_t* rec = L.edges + ((p0 + pq + q) * all_groups + i0 / kInt8Group) * kI8GroupBytes;
        for (uint32_t g = 0; g < groups; ++g)
          reinterpret_cast<DecodedRecord*>(sc.decoded)[q * block_groups + g] = decode_record(d, rec + g * kI8GroupBytes);
      }
      for (uint32_t s = 0; s < B.samples; ++s) {
        const uint8_t* tables = sc.tables + static_cast<size_t>(s) * kInt8BatchBlock * kStride;
        const uint8_t* bsum8 = B.bsum8 + static_cast<size_t>(s) * in4 + i0;
        const uint8_t* silu8 = B.silu8 + static_cast<size_t>(s) * in4 + i0;
        for (uint32_t q = 0; q < nq; ++q) {
          int32_t* acc = reinterpret_cast<int32_t*>(sc.acc) + (static_cast<size_t>(s) * np + pq + q) * 48;
          __m256i a[6];
          for (int k = 0; k < 6; ++k) a[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 8 * k));
          const DecodedRecord* dec = reinterpret_cast<const DecodedRecord*>(sc.decoded) + q * block_groups;
          for (uint32_t g = 0; g < groups; ++g)
            accumulate_record<kStride>(tables + static_cast<size_t>(g) * kInt8Group * kStride, dec[g].y01, dec[g].y23, dec[g],
                                       broadcast4_avx2(bsum8 + kInt8Group * g), broadcast4_avx2(silu8 + kInt8Group * g), a);
          for (int k = 0; k < 6; ++k) _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 8 * k), a[k]);
        }
      }
    }
  }
  for (uint32_t s = 0; s < B.samples; ++s) {
    const uint8_t* bsum8 = B.bsum8 + static_cast<size_t>(s) * in4;
    const uint8_t* silu8 = B.silu8 + static_cast<size_t>(s) * in4;
    const uint32_t bias_off = d.bias_offset() * byte_sum(bsum8, in4), base_off = d.base_offset() * byte_sum(silu8, in4);
    for (uint32_t p = p0; p < p1; ++p)
      store_panel_avx2(L, p, reinterpret_cast<const int32_t*>(sc.acc) + (static_cast<size_t>(s) * np + (p - p0)) * 48, bias_off,
                       base_off, B.lo[s], B.sx[s], y + static_cast<size_t>(s) * L.out_features);
  }
}

template <typename Dec>
void batch_avx2_s(const KanLayerView& L, const Int8Batch& B, uint32_t p0, uint32_t p1, uint8_t* scratch, float* y) {
  switch (L.int8.table_stride) {
    case 32: return batch_avx2_t<32, Dec>(L, B, p0, p1, scratch, y);
    case 64: return batch_avx2_t<64, Dec>(L, B, p0, p1, scratch, y);
    case 128: return batch_avx2_t<128, Dec>(L, B, p0, p1, scratch, y);
    default: return batch_avx2_t<256, Dec>(L, B, p0, p1, scratch, y);
  }
}

void int8_batch_avx2(const KanLayerView& L, const Int8Batch& B, uint32_t p0, uint32_t p1, uint8_t* scratch, float* y) {
  if (!avx2_int8_fits(L)) return int8_batch(L, B, p0, p1, scratch, y);
  if (L.gain.bits == 6 && L.bias.bits == 4 && L.base.bits == 5) batch_avx2_s<Words<6, 4, 5>>(L, B, p0, p1, scratch, y);
  else batch_avx2_s<WordsAny>(L, B, p0, p1, scratch, y);
}

}  // namespace
