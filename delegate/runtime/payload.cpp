#include "payload.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "crc32.h"

#include "generated/lutham_generated.h"

namespace lutham {
namespace {

namespace fb = lutham::payload;

bool fail(std::string* why, const char* fmt, unsigned long long a = 0, unsigned long long b = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, fmt, a, b);
  if (why) *why = buf;
  return false;
}

uint64_t packed_bytes(uint64_t count, uint64_t bits) { return (count * bits + 7) / 8; }

template <typename V>
uint64_t length(const V* v) {
  return v ? v->size() : 0;
}

bool all_finite(const float* v, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) return false;
  }
  return true;
}

// A QuantTensor of rows x cols; `what` names it in messages.
bool check_quant(const fb::QuantTensor* t, uint64_t rows, uint64_t cols, const char* what, QuantView* out,
                 std::string* why) {
  char msg[160];
  auto bad = [&](const char* reason, unsigned long long a = 0, unsigned long long b = 0) {
    std::snprintf(msg, sizeof msg, "%s: %s", what, reason);
    return fail(why, msg, a, b);
  };
  if (t == nullptr) return bad("missing");
  if (t->rows() != rows || t->cols() != cols)
    return bad("shape does not match the layer (rows %llu, cols %llu)", t->rows(), t->cols());
  const uint64_t count = rows * cols;
  const uint32_t bits = t->bits();
  out->rows = static_cast<uint32_t>(rows);
  out->cols = static_cast<uint32_t>(cols);
  out->bits = bits;
  if (bits == 32) {
    if (length(t->f32()) != count) return bad("f32 has %llu values, expected %llu", length(t->f32()), count);
    if (length(t->packed()) != 0 || length(t->scales()) != 0) return bad("float tensor carries packed data or scales");
    out->f32 = count ? t->f32()->data() : nullptr;
    if (!all_finite(out->f32, count)) return bad("non-finite value");
    return true;
  }
  if (bits < 2 || bits > 8) return bad("bit width %llu is not 2..8 or 32", bits);
  if (length(t->f32()) != 0) return bad("quantized tensor carries f32 values");
  if (length(t->packed()) != packed_bytes(count, bits))
    return bad("packed has %llu bytes, expected %llu", length(t->packed()), packed_bytes(count, bits));
  if (length(t->scales()) != rows) return bad("scales has %llu values, expected %llu", length(t->scales()), rows);
  out->packed = count ? t->packed()->data() : nullptr;
  out->scales = rows ? t->scales()->data() : nullptr;
  if (!all_finite(out->scales, rows)) return bad("non-finite scale");
  return true;
}

uint32_t ceil_log2(uint64_t k) {
  uint32_t b = 0;
  while ((1ull << b) < k) ++b;
  return b;
}

// Bounds that keep every product below 2^63 and every row/scratch size reasonable.
constexpr uint64_t kMaxFeatures = 1u << 24;
constexpr uint64_t kMaxEdges = 1ull << 34;
constexpr uint64_t kMaxGridSize = 1u << 16;

// One EdgeValues of the layer: bits 2..8 with panel-padded finite scales, or 32.
bool check_edge_values(const fb::EdgeValues* v, uint64_t padded_out, const char* what, EdgeValuesView* out,
                       std::string* why) {
  char msg[160];
  auto bad = [&](const char* reason, unsigned long long a = 0, unsigned long long b = 0) {
    std::snprintf(msg, sizeof msg, "%s: %s", what, reason);
    return fail(why, msg, a, b);
  };
  if (v == nullptr) return bad("missing");
  out->bits = v->bits();
  if (out->bits == 32) {
    if (length(v->scales()) != 0) return bad("float values carry scales");
    out->scales = nullptr;
    return true;
  }
  if (out->bits < 2 || out->bits > 8) return bad("bit width %llu is not 2..8 or 32", out->bits);
  if (length(v->scales()) != padded_out)
    return bad("scales has %llu values, expected %llu (outputs padded to whole panels)", length(v->scales()), padded_out);
  out->scales = v->scales()->data();
  if (!all_finite(out->scales, padded_out)) return bad("non-finite scale");
  return true;
}

template <typename V>
uint32_t crc_of(uint32_t crc, const V* v) {
  return v ? crc32(crc, v->data(), v->size() * sizeof(*v->data())) : crc;
}

}  // namespace

bool parse_payload(const void* data, size_t size, ParsedPayload* out, std::string* why, bool verify_checksum) {
  if (data == nullptr || size < 8) return fail(why, "payload too small (%llu bytes)", size);
  if (!fb::PayloadBufferHasIdentifier(data)) return fail(why, "payload identifier is not LTHM");
  flatbuffers::Verifier verifier(static_cast<const uint8_t*>(data), size);
  if (!fb::VerifyPayloadBuffer(verifier)) return fail(why, "payload failed flatbuffers verification (truncated or corrupt)");
  const fb::Payload* p = fb::GetPayload(data);
  const uint32_t version = p->schema_version();
  if (version != kSchemaVersion && version != kSchemaVersionInt8)
    return fail(why, "payload schema_version %llu, this runtime knows %llu and 3 (re-export the .pte with this LUTHAM)",
                version, kSchemaVersion);
  const fb::KanLayer* k = p->layer();
  if (k == nullptr) return fail(why, "payload has no layer");
  const uint64_t in = k->in_features(), out_f = k->out_features();
  if (in == 0 || out_f == 0 || in > kMaxFeatures || out_f > kMaxFeatures)
    return fail(why, "bad layer size in_features=%llu out_features=%llu", in, out_f);
  if (in * out_f > kMaxEdges) return fail(why, "layer has too many edges (%llu)", in * out_f);
  const fb::Grid* g = k->grid();
  if (g == nullptr) return fail(why, "layer has no grid");
  const bool rbf = g->kind() == fb::BasisKind::GaussianRBF;
  if (g->kind() != fb::BasisKind::BSpline && !rbf)
    return fail(why, "unknown basis kind %llu", static_cast<unsigned>(g->kind()));
  const uint64_t G = g->grid_size(), order = g->spline_order();
  if (G < 1 || G > kMaxGridSize) return fail(why, "grid_size %llu out of range 1..65536", G);
  if (order > kMaxSplineOrder) return fail(why, "spline_order %llu above %llu", order, kMaxSplineOrder);
  if (rbf && order != 0) return fail(why, "a Gaussian RBF grid has spline_order %llu, expected 0", order);
  if (rbf && !(std::isfinite(g->rbf_denominator()) && g->rbf_denominator() > 0.0f))
    return fail(why, "rbf_denominator must be finite and > 0");
  const uint64_t n_knots = rbf ? G : G + 2 * order + 1;
  // Either one row of knots per input, or one row shared by every input (uniform grids).
  const uint64_t n_values = length(g->knots());
  if (n_values != in * n_knots && n_values != n_knots)
    return fail(why, "knots has %llu values, expected in_features*n_knots = %llu or one shared row", n_values,
                in * n_knots);
  const bool knots_shared = n_values == n_knots;
  const uint64_t knot_rows = knots_shared ? 1 : in;
  const float* knots = g->knots()->data();
  if (!all_finite(knots, knot_rows * n_knots)) return fail(why, "non-finite knot");
  for (uint64_t i = 0; i < knot_rows && !rbf; ++i) {
    for (uint64_t j = 0; j + 1 < n_knots; ++j) {
      if (!(knots[i * n_knots + j] < knots[i * n_knots + j + 1]))
        return fail(why, "knots of input %llu are not strictly increasing at %llu", i, j);
    }
  }
  if (k->codebook_key() == nullptr || k->codebook_key()->size() == 0) return fail(why, "layer has no codebook_key");
  const uint64_t K = k->codebook_size(), dim = k->codebook_dim();
  if (K == 0 || K > 65536) return fail(why, "codebook_size %llu is not 1..65536", K);
  if (dim != G + order) return fail(why, "codebook_dim %llu, expected grid_size+spline_order = %llu", dim, G + order);
  const uint64_t ib = k->index_bits();
  const uint64_t need = std::max<uint32_t>(1, ceil_log2(K));
  if (ib < need || ib > 16) return fail(why, "index_bits %llu, codebook_size needs %llu..16", ib, need);

  KanLayerView& L = out->layer;
  L = KanLayerView{};
  L.in_features = static_cast<uint32_t>(in);
  L.out_features = static_cast<uint32_t>(out_f);
  L.panels = static_cast<uint32_t>((out_f + kPanelWidth - 1) / kPanelWidth);
  L.basis = rbf ? Basis::GaussianRBF : Basis::BSpline;
  L.grid_size = static_cast<uint32_t>(G);
  L.spline_order = static_cast<uint32_t>(order);
  L.knots = knots;
  L.n_knots = static_cast<uint32_t>(n_knots);
  L.knot_stride = knots_shared ? 0 : static_cast<uint32_t>(n_knots);
  L.rbf_denominator = g->rbf_denominator();
  L.codebook_size = static_cast<uint32_t>(K);
  L.codebook_dim = static_cast<uint32_t>(dim);
  L.index_bits = static_cast<uint32_t>(ib);
  const uint64_t padded_out = static_cast<uint64_t>(L.panels) * kPanelWidth;
  if (!check_edge_values(k->gain(), padded_out, "gain", &L.gain, why)) return false;
  if (!check_edge_values(k->bias(), padded_out, "bias", &L.bias, why)) return false;
  if (!check_edge_values(k->base(), padded_out, "base", &L.base, why)) return false;
  const bool floats = L.gain.bits == 32;
  if ((L.bias.bits == 32) != floats || (L.base.bits == 32) != floats)
    return fail(why, "gain, bias and base must be all float32 or all integers");
  const uint64_t value_bits = floats ? 0 : L.gain.bits + L.bias.bits + L.base.bits;
  L.index_bytes = ib <= 8 ? 1 : 2;
  L.word_bytes = floats ? 0 : (value_bits <= 16 ? 2 : 4);
  const fb::EdgePanels* panels = k->panels();
  if (panels == nullptr) return fail(why, "layer has no edge panels");
  if (panels->width() != kPanelWidth) return fail(why, "panel width %llu, this runtime knows %llu", panels->width(), kPanelWidth);
  const fb::ComputeMode compute = k->compute();
  if (compute != fb::ComputeMode::Float && compute != fb::ComputeMode::Int8)
    return fail(why, "unknown compute mode %llu", static_cast<unsigned>(compute));
  const bool int8 = compute == fb::ComputeMode::Int8;
  const uint64_t group = panels->group();
  if (group != (int8 ? 4 : 1))
    return fail(why, int8 ? "an int8 layer's panels must have group 4, got %llu" : "a float layer's panels must have group 1, got %llu", group);
  if (int8 && version < kSchemaVersionInt8)
    return fail(why, "payload says schema_version %llu but uses version 3's int8 mode", version);
  if (int8 && (floats || L.index_bytes != 1))
    return fail(why, floats ? "compute int8: the int8 mode needs integer gains, biases and base weights (the layer stores float32)"
                            : "compute int8: the int8 mode needs one-byte indices (index_bits <= 8)");
  L.group = static_cast<uint32_t>(group);
  // group 4: byte planes of 16 x 4 bytes, the indices and each byte of the words.
  const uint64_t record = int8 ? kPanelWidth * 4 * (1 + L.word_bytes)
                               : kPanelWidth * (L.index_bytes + (floats ? 3 * sizeof(float) : L.word_bytes));
  if (panels->record_bytes() != record)
    return fail(why, "panel records are %llu bytes, the layer's widths make them %llu", panels->record_bytes(), record);
  const uint64_t records = static_cast<uint64_t>(L.panels) * (int8 ? (in + 3) / 4 : in);
  if (length(panels->data()) != records * record)
    return fail(why, "panel data has %llu bytes, expected %llu", length(panels->data()), records * record);
  L.edges = panels->data()->data();
  L.record_bytes = static_cast<uint32_t>(record);
  // The checksum covers every byte the kernel reads but the codebook (checked by its key).
  uint32_t crc = crc_of(0, g->knots());
  crc = crc_of(crc, panels->data());
  crc = crc_of(crc, k->gain()->scales());
  crc = crc_of(crc, k->bias()->scales());
  crc = crc_of(crc, k->base()->scales());
  if (compute != fb::ComputeMode::Float) {
    const uint8_t mode = static_cast<uint8_t>(compute);
    crc = crc32(crc, &mode, 1);
  }
  if (verify_checksum && crc != k->checksum())
    return fail(why, "payload checksum mismatch (stored %08llx, computed %08llx): the data is corrupt", k->checksum(), crc);
  if (floats) {
    for (uint64_t r = 0; r < records; ++r) {
      const uint8_t* values = L.edges + r * record + kPanelWidth * L.index_bytes;
      for (uint32_t v = 0; v < 3 * kPanelWidth; ++v) {
        float f;
        std::memcpy(&f, values + v * sizeof(float), sizeof f);
        if (!std::isfinite(f)) return fail(why, "non-finite edge value in panel record %llu", r);
      }
    }
  }
  if (!check_indices(L, why)) return false;
  if (compute == fb::ComputeMode::Int8) {
    L.compute = Compute::Int8;
    if (const char* reason = int8_unsupported(L)) {
      if (why) *why = std::string("compute int8: ") + reason;
      return false;
    }
  }
  out->codebook_key = std::string_view(k->codebook_key()->c_str(), k->codebook_key()->size());
  return true;
}

bool check_indices(const KanLayerView& layer, std::string* why) {
  if (layer.group == 4 && layer.in_features % 4 != 0) {
    // The last group record of each panel pads the inputs past in_features; their value words
    // must be 0 (the writer's), as the vector loops add those edges in (gain 0 x any table
    // value) where the portable loops skip them: a nonzero word would make the variants differ.
    const uint64_t groups = (layer.in_features + 3) / 4;
    const uint32_t real = layer.in_features % 4;
    for (uint64_t p = 0; p < layer.panels; ++p) {
      const uint8_t* rec = layer.edges + (p * groups + groups - 1) * layer.record_bytes;
      for (uint32_t k = 0; k < layer.word_bytes; ++k)
        for (uint32_t b = 0; b < 4 * kPanelWidth; ++b) {
          if (b % 4 < real || rec[4 * kPanelWidth * (1 + k) + b] == 0) continue;
          char msg[200];
          std::snprintf(msg, sizeof msg, "edge (output %llu, input %llu) pads the inputs (in_features %u) but its value word is not 0",
                        static_cast<unsigned long long>(p * kPanelWidth + b / 4),
                        static_cast<unsigned long long>((groups - 1) * 4 + b % 4), layer.in_features);
          if (why) *why = msg;
          return false;
        }
    }
  }
  // Indices of `index_bytes` bytes that cannot reach K need checking; the padding lanes too.
  if (layer.codebook_size >= (1u << (8 * layer.index_bytes))) return true;
  if (layer.group == 4) {
    // The index plane of each group record: byte 4 * lane + j is edge (lane, 4g + j).
    const uint64_t groups = (layer.in_features + 3) / 4, records = static_cast<uint64_t>(layer.panels) * groups;
    for (uint64_t r = 0; r < records; ++r) {
      const uint8_t* rec = layer.edges + r * layer.record_bytes;
      for (uint32_t b = 0; b < 4 * kPanelWidth; ++b) {
        if (rec[b] < layer.codebook_size) continue;
        const uint64_t p = r / groups, i = (r % groups) * 4 + b % 4;
        char msg[200];
        std::snprintf(msg, sizeof msg, "index %u of edge (output %llu, input %llu) is >= codebook_size %u", rec[b],
                      static_cast<unsigned long long>(p * kPanelWidth + b / 4), static_cast<unsigned long long>(i),
                      layer.codebook_size);
        if (why) *why = msg;
        return false;
      }
    }
    return true;
  }
  const uint64_t records = static_cast<uint64_t>(layer.panels) * layer.in_features;
  for (uint64_t r = 0; r < records; ++r) {
    const uint8_t* rec = layer.edges + r * layer.record_bytes;
    for (uint32_t l = 0; l < kPanelWidth; ++l) {
      const uint32_t idx = layer.index_bytes == 1 ? rec[l] : static_cast<uint32_t>(rec[2 * l]) | (static_cast<uint32_t>(rec[2 * l + 1]) << 8);
      if (idx >= layer.codebook_size) {
        const uint64_t p = r / layer.in_features, i = r % layer.in_features;
        char msg[200];
        std::snprintf(msg, sizeof msg, "index %u of edge (output %llu, input %llu) is >= codebook_size %u", idx,
                      static_cast<unsigned long long>(p * kPanelWidth + l), static_cast<unsigned long long>(i),
                      layer.codebook_size);
        if (why) *why = msg;
        return false;
      }
    }
  }
  return true;
}

bool parse_codebook(const void* data, size_t size, QuantView* out, std::string* why) {
  if (data == nullptr || size < 8) return fail(why, "codebook too small (%llu bytes)", size);
  if (!flatbuffers::BufferHasIdentifier(data, "LTCB")) return fail(why, "codebook identifier is not LTCB");
  flatbuffers::Verifier verifier(static_cast<const uint8_t*>(data), size);
  if (!verifier.VerifyBuffer<fb::Codebook>("LTCB"))
    return fail(why, "codebook failed flatbuffers verification (truncated or corrupt)");
  const fb::Codebook* cb = flatbuffers::GetRoot<fb::Codebook>(data);
  const uint64_t K = cb->size(), dim = cb->dim();
  if (K == 0 || dim == 0 || dim > kMaxGridSize + kMaxSplineOrder || K > (1ull << 32) - 1)
    return fail(why, "bad codebook shape %llu x %llu", K, dim);
  return check_quant(cb->values(), K, dim, "codebook values", out, why);
}

}  // namespace lutham
