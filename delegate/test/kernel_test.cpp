// Unit checks of the kernel pieces that need no ExecuTorch program: the B-spline window
// against a full (all-bases) Cox-de Boor evaluation, partition of unity, zeros outside the
// grid, bit readers, CRC-32, SHA-256 (codebook keys), and kan_forward bit for bit against a
// scalar reference on payloads from the Python writer (make_kernel_cases.py), on every path
// and every kernel variant the CPU can run (the others are printed as skipped).
// Exit status 0 = pass. Runs on the build machine and under qemu.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "crc32.h"
#include "kan_kernel.h"
#include "payload.h"
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

// The cases make_kernel_cases.py wrote (payloads and codebooks from the Python writer, the
// Python reader's decoding of them as the oracle). See that script for the file layout.
std::vector<uint8_t> read_file(const std::string& path) {
  std::vector<uint8_t> bytes;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return bytes;
  uint8_t buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  std::fclose(f);
  return bytes;
}

// A 16-byte aligned copy (the runtime hands the parsers aligned buffers).
struct Aligned {
  explicit Aligned(const std::vector<uint8_t>& b) : size(b.size()) {
    data = std::aligned_alloc(16, (b.size() + 15) & ~size_t{15});
    std::memcpy(data, b.data(), b.size());
  }
  ~Aligned() { std::free(data); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
  void* data;
  size_t size;
};

constexpr size_t kMaxBatch = 20;

// y = layer(x) by the documented chain, one output at a time, from the oracle's values.
std::vector<float> scalar_reference(const lutham::KanLayerView& L, const float* idx, const float* gain, const float* bias,
                                    const float* base, const float* words, const float* x, size_t batch) {
  const uint32_t in = L.in_features, out = L.out_features, K = L.codebook_size, dim = L.codebook_dim;
  const bool rbf = L.basis == lutham::Basis::GaussianRBF;
  std::vector<float> ref(batch * out);
  for (size_t n = 0; n < batch; ++n) {
    for (uint32_t o = 0; o < out; ++o) {
      float acc = 0.0f;
      for (uint32_t i = 0; i < in; ++i) {
        const float xv = x[n * in + i];
        const float* t = L.knots + static_cast<size_t>(i) * L.knot_stride;
        float b[32] = {};
        uint32_t st = 0;
        float bsum = 0.0f;
        if (rbf) {
          for (uint32_t m = 0; m < L.grid_size; ++m) {
            const float u = (xv - t[m]) / L.rbf_denominator;
            b[m] = std::exp(-(u * u));
            bsum += b[m];
          }
        } else {
          bsum = lutham::bspline_window(t, L.n_knots, L.spline_order, xv, b, &st);
        }
        const uint32_t width = rbf ? L.grid_size : L.spline_order + 1;
        const size_t e = static_cast<size_t>(o) * in + i;
        const uint32_t c = static_cast<uint32_t>(idx[e]);
        CHECK(c < K, "oracle index %u >= K %u", c, K);
        float d = b[0] * words[static_cast<size_t>(c) * dim + st];
        for (uint32_t r = 1; r < width; ++r) d = std::fmaf(b[r], words[static_cast<size_t>(c) * dim + st + r], d);
        const float silu = xv / (1.0f + std::exp(-xv));
        float a = std::fmaf(base[e], silu, acc);
        a = std::fmaf(gain[e], d, a);
        acc = std::fmaf(bias[e], bsum, a);
      }
      ref[n * out + o] = acc;
    }
  }
  return ref;
}

// One case on the variants in `isas`, every batch and task order, bit for bit against the
// scalar reference, and within 1e-5 (relative L2) of the float64 forward.
void check_case(const std::string& dir, const std::string& name, const std::vector<std::string>& isas) {
  using namespace lutham;
  const std::string base = dir + "/" + name;
  const std::vector<uint8_t> payload_bytes = read_file(base + ".payload"), codebook_bytes = read_file(base + ".codebook");
  const std::vector<uint8_t> x_bytes = read_file(base + ".x"), edge_bytes = read_file(base + ".edges"),
                             ref_bytes = read_file(base + ".ref");
  if (payload_bytes.empty() || codebook_bytes.empty() || x_bytes.empty() || edge_bytes.empty() || ref_bytes.empty()) {
    CHECK(false, "case %s: missing files in %s", name.c_str(), dir.c_str());
    return;
  }
  const Aligned payload(payload_bytes), codebook(codebook_bytes);
  ParsedPayload parsed;
  std::string why;
  if (!parse_payload(payload.data, payload.size, &parsed, &why)) {
    CHECK(false, "case %s: the runtime rejects the Python writer's payload: %s", name.c_str(), why.c_str());
    return;
  }
  QuantView words_view;
  if (!parse_codebook(codebook.data, codebook.size, &words_view, &why)) {
    CHECK(false, "case %s: the runtime rejects the Python writer's codebook: %s", name.c_str(), why.c_str());
    return;
  }
  KanLayerView L = parsed.layer;
  L.codebook = words_view;
  const uint32_t in = L.in_features, out = L.out_features, K = L.codebook_size, dim = L.codebook_dim;
  std::vector<float> columns(static_cast<size_t>(K) * dim);
  dequantize_columns(words_view, columns.data());
  L.codebook_columns = columns.data();
  const size_t edges = static_cast<size_t>(out) * in;
  if (edge_bytes.size() != (4 * edges + static_cast<size_t>(K) * dim) * 4 ||
      x_bytes.size() != kMaxBatch * in * 4 || ref_bytes.size() != kMaxBatch * out * 8) {
    CHECK(false, "case %s: file sizes do not match the payload's %u x %u layer", name.c_str(), out, in);
    return;
  }
  const float* oracle = reinterpret_cast<const float*>(edge_bytes.data());
  const float *idx = oracle, *gain = oracle + edges, *bias = oracle + 2 * edges, *base_w = oracle + 3 * edges;
  const float* words = oracle + 4 * edges;  // K x dim, as read_codebook dequantizes
  size_t codebook_diffs = 0;
  for (uint32_t c = 0; c < K; ++c)
    for (uint32_t m = 0; m < dim; ++m)
      codebook_diffs += std::memcmp(&columns[static_cast<size_t>(m) * K + c], &words[static_cast<size_t>(c) * dim + m], 4) != 0;
  CHECK(codebook_diffs == 0, "case %s: %zu codebook values differ from Python's read_codebook", name.c_str(), codebook_diffs);
  const float* x = reinterpret_cast<const float*>(x_bytes.data());
  const double* ref64 = reinterpret_cast<const double*>(ref_bytes.data());
  for (size_t batch : {1u, 3u, 8u, 13u, 20u}) {
    const std::vector<float> ref = scalar_reference(L, idx, gain, bias, base_w, words, x, batch);
    double num = 0, den = 0;
    for (size_t j = 0; j < ref.size(); ++j) {
      num += (ref[j] - ref64[j]) * (ref[j] - ref64[j]);
      den += ref64[j] * ref64[j];
    }
    CHECK(num <= 1e-10 * den, "case %s batch %zu: the float32 chain is %.3g (relative L2) off the float64 forward",
          name.c_str(), batch, std::sqrt(num / den));
    for (const std::string& isa : isas) {
      kan_force_isa(isa.c_str());
      for (uint32_t threads : {1u, 3u}) {
        TaskRunner reverse;
        reverse.threads = threads;
        reverse.run = [](void*, int64_t n, void* job, void (*task)(void*, int64_t)) {
          for (int64_t t = n - 1; t >= 0; --t) task(job, t);
        };
        std::vector<uint8_t> scratch(kan_scratch_bytes(L, batch, threads) + 64);
        void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) & ~uintptr_t{63});
        std::vector<float> y(batch * out, -1.0f);
        kan_forward(L, x, batch, y.data(), aligned, threads > 1 ? &reverse : nullptr);
        size_t diffs = 0;
        for (size_t j = 0; j < y.size(); ++j) diffs += std::memcmp(&y[j], &ref[j], 4) != 0;
        CHECK(diffs == 0, "kan_forward %s (%s) batch %zu threads %u: %zu of %zu outputs differ from the reference (first: %.9g vs %.9g)",
              name.c_str(), kan_isa(), batch, threads, diffs, y.size(), y[0], ref[0]);
      }
    }
  }
}

// An int8-mode case (make_kernel_cases.py INT8_CASES) on the variants in `isas`, every batch
// and task order: bit for bit the numpy reference of the int8 mode (NAME.int8ref, NaN where a
// sample has a NaN input), and within 5% (relative L2, per batch) of the float mode's float64
// forward of the same layer (NAME.floatref).
void check_int8_case(const std::string& dir, const std::string& name, const std::vector<std::string>& isas) {
  using namespace lutham;
  const std::string base = dir + "/" + name;
  const std::vector<uint8_t> payload_bytes = read_file(base + ".payload"), codebook_bytes = read_file(base + ".codebook");
  const std::vector<uint8_t> x_bytes = read_file(base + ".x"), ref_bytes = read_file(base + ".int8ref"),
                             float_bytes = read_file(base + ".floatref");
  const Aligned payload(payload_bytes), codebook(codebook_bytes);
  ParsedPayload parsed;
  std::string why;
  if (!parse_payload(payload.data, payload.size, &parsed, &why)) {
    CHECK(false, "case %s: the runtime rejects the Python writer's int8 payload: %s", name.c_str(), why.c_str());
    return;
  }
  QuantView words_view;
  if (!parse_codebook(codebook.data, codebook.size, &words_view, &why)) {
    CHECK(false, "case %s: the runtime rejects the Python writer's codebook: %s", name.c_str(), why.c_str());
    return;
  }
  KanLayerView L = parsed.layer;
  CHECK(L.compute == Compute::Int8 && L.group == 4, "case %s: the payload is not an int8-mode one", name.c_str());
  // A nonzero value word in the inputs that pad the last group record is refused: the vector
  // loops add those edges in, the portable ones skip them (the fuzzer found the difference).
  if (L.in_features % 4 != 0 && L.word_bytes != 0) {
    std::vector<uint8_t> bad(payload_bytes);
    const size_t groups = (L.in_features + 3) / 4;
    const size_t at = static_cast<size_t>(L.edges - static_cast<const uint8_t*>(payload.data)) + (groups - 1) * L.record_bytes +
                      4 * kPanelWidth + L.in_features % 4;  // low word byte of (lane 0, first padding input)
    bad[at] ^= 1;
    const Aligned bad_payload(bad);
    ParsedPayload reparsed;
    std::string bad_why;
    CHECK(!parse_payload(bad_payload.data, bad_payload.size, &reparsed, &bad_why, /*verify_checksum=*/false) &&
              bad_why.find("pads the inputs") != std::string::npos,
          "case %s: a nonzero padding word is not refused (%s)", name.c_str(), bad_why.c_str());
  }
  L.codebook = words_view;
  std::vector<float> columns(static_cast<size_t>(L.codebook_size) * L.codebook_dim);
  dequantize_columns(words_view, columns.data());
  L.codebook_columns = columns.data();
  std::vector<uint64_t> int8_memory(kan_int8_bytes(L) / 8 + 16);
  kan_int8_prepare(&L, reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(int8_memory.data()) + 63) & ~uintptr_t{63}));
  const uint32_t in = L.in_features, out = L.out_features;
  if (x_bytes.size() != kMaxBatch * in * 4 || ref_bytes.size() != kMaxBatch * out * 4 ||
      float_bytes.size() != kMaxBatch * out * 8) {
    CHECK(false, "case %s: file sizes do not match the payload's %u x %u layer", name.c_str(), out, in);
    return;
  }
  const float* x = reinterpret_cast<const float*>(x_bytes.data());
  const float* ref = reinterpret_cast<const float*>(ref_bytes.data());
  const double* ref64 = reinterpret_cast<const double*>(float_bytes.data());
  for (size_t batch : {1u, 3u, 4u, 8u, 13u, 20u}) {
    double num = 0, den = 0;
    for (size_t j = 0; j < batch * out; ++j) {
      if (std::isnan(ref[j])) continue;
      num += (ref[j] - ref64[j]) * (ref[j] - ref64[j]);
      den += ref64[j] * ref64[j];
    }
    CHECK(num <= 0.05 * 0.05 * den, "case %s batch %zu: the int8 mode is %.3g (relative L2) off the float forward",
          name.c_str(), batch, std::sqrt(num / den));
    for (const std::string& isa : isas) {
      kan_force_isa(isa.c_str());
      for (uint32_t threads : {1u, 3u}) {
        TaskRunner reverse;
        reverse.threads = threads;
        reverse.run = [](void*, int64_t n, void* job, void (*task)(void*, int64_t)) {
          for (int64_t t = n - 1; t >= 0; --t) task(job, t);
        };
        std::vector<uint8_t> scratch(kan_scratch_bytes(L, batch, threads) + 64);
        void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) & ~uintptr_t{63});
        std::vector<float> y(batch * out, -1.0f);
        kan_forward(L, x, batch, y.data(), aligned, threads > 1 ? &reverse : nullptr);
        size_t diffs = 0, first = 0;
        for (size_t j = 0; j < y.size(); ++j)
          if (std::memcmp(&y[j], &ref[j], 4) != 0 && diffs++ == 0) first = j;
        CHECK(diffs == 0, "kan_forward %s (%s, int8) batch %zu threads %u: %zu of %zu outputs differ from the numpy reference (first at %zu: %.9g vs %.9g)",
              name.c_str(), kan_isa(), batch, threads, diffs, y.size(), first, y[first], ref[first]);
      }
    }
  }
}

// Every case in `dir` on every variant this CPU runs; the others are reported as skipped.
void check_cases(const std::string& dir) {
  lutham::KernelIsa variants[8];
  const size_t n = std::min<size_t>(8, lutham::kan_isa_variants(variants, 8));
  std::vector<std::string> isas;
  for (size_t i = 0; i < n; ++i) {
    if (variants[i].runnable) {
      isas.push_back(variants[i].name);
      std::printf("kernel_test: variant %s: checked\n", variants[i].name);
    } else {
      std::printf("kernel_test: variant %s: SKIPPED, this CPU lacks %s (lscpu flags)\n", variants[i].name,
                  variants[i].needs);
    }
  }
  const std::string default_isa = lutham::kan_isa();
  const std::vector<uint8_t> list = read_file(dir + "/cases.txt");
  CHECK(!list.empty(), "no kernel cases in %s (make_kernel_cases.py writes them; the build does)", dir.c_str());
  size_t cases = 0;
  std::string line;
  for (uint8_t ch : list) {
    if (ch != '\n') {
      line += static_cast<char>(ch);
      continue;
    }
    if (!line.empty()) {
      if (std::FILE* f = std::fopen((dir + "/" + line + ".int8ref").c_str(), "rb")) {
        std::fclose(f);
        check_int8_case(dir, line, isas);
      } else {
        check_case(dir, line, isas);
      }
      ++cases;
    }
    line.clear();
  }
  lutham::kan_force_isa(default_isa.c_str());
  std::printf("kernel_test: %zu cases from %s on %zu variant(s)\n", cases, dir.c_str(), isas.size());
}

}  // namespace

int main(int argc, char** argv) {
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
  // kan_forward on every variant against a scalar reference of the same arithmetic, bit for
  // bit, on layers written by the Python writer (argv[1], LUTHAM_KERNEL_CASES or the build's
  // kernel_cases directory).
  {
    const char* env = std::getenv("LUTHAM_KERNEL_CASES");
    check_cases(argc > 1 ? argv[1] : env != nullptr ? env : LUTHAM_KERNEL_CASES_DIR);
  }
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
