// Unit checks of the kernel pieces that need no ExecuTorch program: the B-spline window
// against a full (all-bases) Cox-de Boor evaluation, partition of unity, zeros outside the
// grid, bit readers, CRC-32, SHA-256 (codebook keys), and kan_forward bit for bit against a
// scalar reference (on every path; ctest runs it once more with LUTHAM_ISA=generic).
// Exit status 0 = pass. Runs on the build machine and under qemu.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "crc32.h"
#include "kan_kernel.h"
#include "sha256.h"

namespace {

int failures = 0;
#define CHECK(cond, ...)                 \
  do {                                   \
    if (!(cond)) {                       \
      std::fprintf(stderr, __VA_ARGS__); \
      std::fprintf(stderr, "\n");        \
      ++failures;                        \
    }                                    \
  } while (0)

// efficient-kan's b_splines for one input, all bases (the reference).
std::vector<float> full_bases(const std::vector<float>& t, unsigned k, float x) {
  const size_t n = t.size();
  std::vector<float> b(n - 1);
  for (size_t j = 0; j + 1 < n; ++j) b[j] = (x >= t[j] && x < t[j + 1]) ? 1.0f : 0.0f;
  for (unsigned p = 1; p <= k; ++p) {
    std::vector<float> nb(n - 1 - p);
    for (size_t m = 0; m < nb.size(); ++m) {
      const float left = (x - t[m]) / (t[m + p] - t[m]);
      const float right = (t[m + p + 1] - x) / (t[m + p + 1] - t[m + 1]);
      const float a = left * b[m];
      const float c = right * b[m + 1];
      nb[m] = a + c;
    }
    b = nb;
  }
  return b;
}

// A layer built in memory: panel records encoded here as the Python writer does.
struct Case {
  const char* name;
  uint32_t in, out, K, gain_bits, bias_bits, base_bits;
  bool rbf, per_input_knots;
  bool tiny_scale = false;  // one output's scales so small that scale * 2^-pos underflows
};

uint32_t rng_state = 12345;
uint32_t next_u32() {
  rng_state = rng_state * 1664525u + 1013904223u;
  return rng_state >> 8;
}
float next_float(float lo, float hi) { return lo + (hi - lo) * static_cast<float>(next_u32() % 100000) / 100000.0f; }

void check_forward(const Case& c) {
  using namespace lutham;
  const uint32_t G = c.rbf ? 7 : 5, k = c.rbf ? 0 : 3, dim = G + k, n_knots = c.rbf ? G : G + 2 * k + 1;
  const bool floats = c.gain_bits == 32;
  const uint32_t panels = (c.out + 15) / 16, padded = panels * 16;
  // Knots: uniform on [-1, 1] (per input: shifted a little per input).
  std::vector<float> knots(c.per_input_knots ? c.in * n_knots : n_knots);
  for (size_t r = 0; r < knots.size() / n_knots; ++r) {
    const float h = 2.0f / G, shift = 0.01f * r;
    for (uint32_t j = 0; j < n_knots; ++j)
      knots[r * n_knots + j] = c.rbf ? -1.0f + j * (2.0f / (G - 1)) + shift : (static_cast<int>(j) - static_cast<int>(k)) * h - 1.0f + shift;
  }
  // Codebook: int8 with one scale per codeword.
  std::vector<int8_t> words(static_cast<size_t>(c.K) * dim);
  std::vector<float> word_scales(c.K);
  for (auto& w : words) w = static_cast<int8_t>(static_cast<int>(next_u32() % 255) - 127);
  for (auto& s : word_scales) s = next_float(0.001f, 0.02f);
  QuantView cb;
  cb.rows = c.K;
  cb.cols = dim;
  cb.bits = 8;
  cb.packed = reinterpret_cast<const uint8_t*>(words.data());
  cb.scales = word_scales.data();
  std::vector<float> columns(static_cast<size_t>(c.K) * dim);
  dequantize_columns(cb, columns.data());
  // Edges: logical values, then the panel records.
  const size_t edges = static_cast<size_t>(padded) * c.in;
  std::vector<uint32_t> idx(edges, 0);
  std::vector<int32_t> q[3];
  std::vector<float> fv[3], scales[3];
  const uint32_t bits[3] = {c.gain_bits, c.bias_bits, c.base_bits};
  for (int f = 0; f < 3; ++f) {
    q[f].assign(edges, 0);
    fv[f].assign(edges, 0.0f);
    scales[f].assign(padded, 0.0f);
    for (uint32_t o = 0; o < c.out; ++o) {
      scales[f][o] = next_float(0.01f, 0.1f);
      // The AVX2 16-bit decoder pre-divides scales by 2^pos and must fall back when that is
      // inexact (a denormal); the reference below is unchanged, so the bits must still agree.
      if (c.tiny_scale && o == 1) scales[f][o] = 1.5e-38f;
      for (uint32_t i = 0; i < c.in; ++i) {
        const size_t e = static_cast<size_t>(o) * c.in + i;
        if (floats) {
          fv[f][e] = next_float(-0.5f, 0.5f);
        } else {
          const int32_t qmax = (1 << (bits[f] - 1)) - 1;
          q[f][e] = static_cast<int32_t>(next_u32() % (2 * qmax + 1)) - qmax;
          fv[f][e] = static_cast<float>(q[f][e]) * scales[f][o];
        }
      }
    }
  }
  for (uint32_t o = 0; o < c.out; ++o)
    for (uint32_t i = 0; i < c.in; ++i) idx[static_cast<size_t>(o) * c.in + i] = next_u32() % c.K;
  const uint32_t index_bytes = c.K > 256 ? 2 : 1;
  const uint32_t value_bits = floats ? 0 : c.gain_bits + c.bias_bits + c.base_bits;
  const uint32_t word_bytes = floats ? 0 : (value_bits <= 16 ? 2 : 4);
  const uint32_t record = 16 * (index_bytes + (floats ? 12 : word_bytes));
  std::vector<uint8_t> data(static_cast<size_t>(panels) * c.in * record, 0);
  for (uint32_t p = 0; p < panels; ++p) {
    for (uint32_t i = 0; i < c.in; ++i) {
      uint8_t* rec = data.data() + (static_cast<size_t>(p) * c.in + i) * record;
      for (uint32_t l = 0; l < 16; ++l) {
        const size_t e = static_cast<size_t>(p * 16 + l) * c.in + i;
        for (uint32_t b = 0; b < index_bytes; ++b) rec[l * index_bytes + b] = static_cast<uint8_t>(idx[e] >> (8 * b));
        uint8_t* values = rec + 16 * index_bytes;
        if (floats) {
          for (int f = 0; f < 3; ++f) std::memcpy(values + (f * 16 + l) * 4, &fv[f][e], 4);
        } else {
          uint32_t word = 0, shift = 0;
          for (int f = 0; f < 3; ++f) {
            word |= (static_cast<uint32_t>(q[f][e]) & ((1u << bits[f]) - 1u)) << shift;
            shift += bits[f];
          }
          for (uint32_t b = 0; b < word_bytes; ++b) values[l * word_bytes + b] = static_cast<uint8_t>(word >> (8 * b));
        }
      }
    }
  }
  KanLayerView L;
  L.in_features = c.in;
  L.out_features = c.out;
  L.panels = panels;
  L.basis = c.rbf ? Basis::GaussianRBF : Basis::BSpline;
  L.grid_size = G;
  L.spline_order = k;
  L.knots = knots.data();
  L.n_knots = n_knots;
  L.knot_stride = c.per_input_knots ? n_knots : 0;
  L.rbf_denominator = 0.4f;
  L.codebook_size = c.K;
  L.codebook_dim = dim;
  L.index_bits = index_bytes * 8;
  L.edges = data.data();
  L.record_bytes = record;
  L.index_bytes = index_bytes;
  L.word_bytes = word_bytes;
  L.gain = {c.gain_bits, floats ? nullptr : scales[0].data()};
  L.bias = {c.bias_bits, floats ? nullptr : scales[1].data()};
  L.base = {c.base_bits, floats ? nullptr : scales[2].data()};
  L.codebook = cb;
  L.codebook_columns = columns.data();
  for (size_t batch : {1u, 3u, 8u, 13u, 20u}) {
    std::vector<float> x(batch * c.in);
    for (auto& v : x) v = next_float(-1.3f, 1.3f);
    // Reference: one output at a time, the documented chain.
    std::vector<float> ref(batch * c.out);
    for (size_t n = 0; n < batch; ++n) {
      for (uint32_t o = 0; o < c.out; ++o) {
        float acc = 0.0f;
        for (uint32_t i = 0; i < c.in; ++i) {
          const float xv = x[n * c.in + i];
          const float* t = knots.data() + (c.per_input_knots ? i * n_knots : 0);
          float basis[16] = {};
          uint32_t st = 0;
          float bsum = 0.0f;
          if (c.rbf) {
            for (uint32_t m = 0; m < G; ++m) {
              const float u = (xv - t[m]) / 0.4f;
              basis[m] = std::exp(-(u * u));
              bsum += basis[m];
            }
          } else {
            bsum = bspline_window(t, n_knots, k, xv, basis, &st);
          }
          const uint32_t width = c.rbf ? G : k + 1;
          const size_t e = static_cast<size_t>(o) * c.in + i;
          float d = basis[0] * columns[static_cast<size_t>(st) * c.K + idx[e]];
          for (uint32_t r = 1; r < width; ++r) d = std::fmaf(basis[r], columns[static_cast<size_t>(st + r) * c.K + idx[e]], d);
          const float silu = xv / (1.0f + std::exp(-xv));
          float a = std::fmaf(fv[2][e], silu, acc);
          a = std::fmaf(fv[0][e], d, a);
          acc = std::fmaf(fv[1][e], bsum, a);
        }
        ref[n * c.out + o] = acc;
      }
    }
    for (uint32_t threads : {1u, 3u}) {
      TaskRunner reverse;
      reverse.threads = threads;
      reverse.run = [](void*, int64_t n, void* job, void (*task)(void*, int64_t)) {
        for (int64_t t = n - 1; t >= 0; --t) task(job, t);
      };
      std::vector<uint8_t> scratch(kan_scratch_bytes(L, batch, threads) + 16);
      void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(scratch.data()) + 15) & ~uintptr_t{15});
      std::vector<float> y(batch * c.out, -1.0f);
      kan_forward(L, x.data(), batch, y.data(), aligned, threads > 1 ? &reverse : nullptr);
      size_t diffs = 0;
      for (size_t j = 0; j < y.size(); ++j) diffs += std::memcmp(&y[j], &ref[j], 4) != 0;
      CHECK(diffs == 0, "kan_forward %s (%s) batch %zu threads %u: %zu of %zu outputs differ from the reference (first: %.9g vs %.9g)",
            c.name, kan_isa(), batch, threads, diffs, y.size(), y[0], ref[0]);
    }
  }
}

}  // namespace

int main() {
  for (unsigned k : {0u, 1u, 2u, 3u, 5u}) {
    for (unsigned G : {1u, 2u, 5u, 8u}) {
      std::vector<float> t;
      const float h = 2.0f / G;
      for (int j = -static_cast<int>(k); j <= static_cast<int>(G + k); ++j) t.push_back(j * h - 1.0f);
      for (int s = -300; s <= 300; ++s) {
        const float x = s * 0.0061f;
        const std::vector<float> ref = full_bases(t, k, x);
        float window[lutham::kMaxSplineOrder + 1];
        uint32_t start = 0;
        const float sum = lutham::bspline_window(t.data(), static_cast<uint32_t>(t.size()), k, x, window, &start);
        CHECK(start + k + 1 <= G + k, "window out of range k=%u G=%u x=%g start=%u", k, G, x, start);
        std::vector<float> got(G + k, 0.0f);
        for (unsigned r = 0; r <= k; ++r) got[start + r] = window[r];
        double ref_sum = 0;
        for (size_t m = 0; m < ref.size(); ++m) {
          CHECK(got[m] == ref[m], "basis %zu differs k=%u G=%u x=%.9g: %.9g vs %.9g", m, k, G, x, got[m], ref[m]);
          ref_sum += ref[m];
        }
        CHECK(std::fabs(sum - ref_sum) < 1e-6, "sum differs k=%u G=%u x=%g", k, G, x);
        if (x >= -1.0f && x < 1.0f) CHECK(std::fabs(sum - 1.0f) < 1e-5, "no partition of unity at x=%g", x);
      }
    }
  }
  // Bit reader (codebook packing): LSB-first, signed 3-bit values -4..3.
  {
    std::vector<uint8_t> buf(64, 0);
    const int vals[] = {-4, 3, -1, 0, 2, -3, 1, -2, 3, -4};
    uint64_t bit = 0;
    for (int v : vals) {
      for (int b = 0; b < 3; ++b, ++bit)
        if ((static_cast<unsigned>(v) >> b) & 1) buf[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
    }
    for (int i = 0; i < 10; ++i) CHECK(lutham::read_signed_bits(buf.data(), i, 3) == vals[i], "signed 3-bit %d", i);
  }
  // CRC-32 as zlib: the standard check value, and chaining.
  {
    const char* digits = "123456789";
    CHECK(lutham::crc32(0, digits, 9) == 0xCBF43926u, "crc32 check value");
    CHECK(lutham::crc32(lutham::crc32(0, digits, 4), digits + 4, 5) == 0xCBF43926u, "crc32 chaining");
    std::vector<uint8_t> big(1000);
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7 + 3);
    CHECK(lutham::crc32(lutham::crc32(0, big.data(), 333), big.data() + 333, 667) == lutham::crc32(0, big.data(), 1000),
          "crc32 chaining over slices");
  }
  // kan_forward against a scalar reference of the same arithmetic, bit for bit: lane and
  // sample paths, table and direct coefficient terms, u8/u16 indices, int and float values,
  // B-spline and RBF bases, tasks run serially and in reverse order.
  check_forward(Case{"int/table", 37, 40, 32, 6, 4, 5, false, false});
  check_forward(Case{"int/direct", 37, 17, 250, 6, 4, 5, false, false});
  // Lane path: two input blocks (lane_input_block), and more panels than one chunk.
  check_forward(Case{"int/table, input blocks", 1100, 20, 32, 6, 4, 5, false, false});
  check_forward(Case{"int/table, panel chunks", 40, 1100, 64, 6, 4, 5, false, false});
  check_forward(Case{"int/table, tiny scale", 37, 40, 32, 6, 4, 5, false, false, true});
  check_forward(Case{"int8/u16-index", 23, 17, 300, 8, 8, 8, false, false});
  check_forward(Case{"float/table", 29, 64, 48, 32, 32, 32, false, false});
  check_forward(Case{"rbf/int", 19, 33, 16, 6, 4, 5, true, false});
  check_forward(Case{"per-input knots", 21, 18, 16, 5, 5, 5, false, true});
  // SHA-256: the FIPS 180-2 examples, then lengths around the padding boundaries (55/56 bytes
  // fit one padded block or not; 64/65, 119/120, 128) with bytes i % 251, digests from
  // Python's hashlib (what codebook_key uses).
  {
    const std::string million(1000000, 'a');
    const struct {
      std::string text;
      const char* hex;
    } fips[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {million, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    };
    for (const auto& v : fips)
      CHECK(lutham::sha256_hex(v.text.data(), v.text.size()) == v.hex, "sha256 of %zu bytes", v.text.size());
    const struct {
      size_t n;
      const char* hex;
    } lengths[] = {
        {55, "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59"},
        {56, "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562"},
        {63, "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488"},
        {64, "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108"},
        {65, "4bfd2c8b6f1eec7a2afeb48b934ee4b2694182027e6d0fc075074f2fabb31781"},
        {119, "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6"},
        {120, "f52b23db1fbb6ded89ef42a23ce0c8922c45f25c50b568a93bf1c075420bbb7c"},
        {128, "471fb943aa23c511f6f72f8d1652d9c880cfa392ad80503120547703e56a2be5"},
        {1000, "4e4c294b331f7a2099a379bec34b9f9fc03dc46ab465d998f4d683da53487e6d"},
    };
    for (const auto& v : lengths) {
      std::vector<uint8_t> bytes(v.n);
      for (size_t i = 0; i < v.n; ++i) bytes[i] = static_cast<uint8_t>(i % 251);
      CHECK(lutham::sha256_hex(bytes.data(), bytes.size()) == v.hex, "sha256 of %zu bytes i %% 251", v.n);
    }
  }
  if (failures) {
    std::fprintf(stderr, "kernel_test: %d failures\n", failures);
    return 1;
  }
  std::printf("kernel_test: ok\n");
  return 0;
}
