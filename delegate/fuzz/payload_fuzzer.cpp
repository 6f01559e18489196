// libFuzzer harness over what LuthamBackend::init and execute do with untrusted bytes:
// parse_payload (+ check_indices), parse_codebook, then, when both are valid and agree on
// K x dim, kan_scratch_bytes + kan_forward on a tiny input with every kernel variant the CPU
// runs (generic, AVX2), whose outputs must agree bit for bit. Built with ASan + UBSan by
// scripts/fuzz.sh; any out-of-bounds access, undefined behaviour, variant mismatch or abort is
// a crash.
//
// Input framing: a 4-byte little-endian payload length n, the payload (n bytes, clamped to
// what is there), then the codebook (the rest). delegate/fuzz/make_corpus.py writes seeds in
// this form from real exported layers.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kan_kernel.h"
#include "payload.h"

namespace {

// An exactly-sized, 16-byte aligned copy (the runtime hands the parsers aligned buffers;
// an exact size lets ASan see any read past the end).
struct AlignedCopy {
  AlignedCopy(const uint8_t* data, size_t size) : size(size) {
    if (posix_memalign(&bytes, 16, size ? size : 1) != 0) std::abort();
    if (size) std::memcpy(bytes, data, size);
  }
  ~AlignedCopy() { std::free(bytes); }
  AlignedCopy(const AlignedCopy&) = delete;
  AlignedCopy& operator=(const AlignedCopy&) = delete;
  void* bytes = nullptr;
  size_t size;
};

// Inputs of two samples: spread over and past the usual grid [-1, 1], knot-like values, and
// the non-finite values a user may feed (NaN falls in no interval, +-inf outside the grid).
float input_value(size_t n, uint32_t i) {
  static const float kValues[] = {-1.5f, -1.0f, -0.3f, 0.0f, 0.2f, 0.999f, 1.0f, 2.5f,
                                  -0.6f, 0.6f, 1e-7f, -1e30f};
  if (n == 1 && i % 5 == 3) {
    const float odd[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity()};
    return odd[(i / 5) % 3];
  }
  return kValues[(i * 7 + n * 3) % (sizeof kValues / sizeof kValues[0])];
}

}  // namespace

// Names the variants this run compares and those the CPU cannot run (scripts/fuzz.sh shows it).
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  lutham::KernelIsa variants[8];
  const size_t n = std::min<size_t>(8, lutham::kan_isa_variants(variants, 8));
  std::string line = "payload_fuzzer: kernel variants";
  for (size_t v = 0; v < n; ++v)
    line += std::string(v ? ", " : " ") + variants[v].name +
            (variants[v].runnable ? " (run)" : std::string(" (SKIPPED, CPU lacks ") + variants[v].needs + ")");
  std::fprintf(stderr, "%s\n", line.c_str());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t n = static_cast<uint32_t>(data[0]) | (static_cast<uint32_t>(data[1]) << 8) |
               (static_cast<uint32_t>(data[2]) << 16) | (static_cast<uint32_t>(data[3]) << 24);
  const size_t payload_size = n < size - 4 ? n : size - 4;
  const AlignedCopy payload(data + 4, payload_size);
  const AlignedCopy codebook(data + 4 + payload_size, size - 4 - payload_size);

  lutham::ParsedPayload parsed;
  std::string why;
  // A mutated payload almost always fails its checksum first; parse it again without that
  // check so the fuzzer also reaches the validation and the kernel behind it.
  bool payload_ok = lutham::parse_payload(payload.bytes, payload.size, &parsed, &why);
  if (!payload_ok && why.find("checksum mismatch") != std::string::npos)
    payload_ok = lutham::parse_payload(payload.bytes, payload.size, &parsed, &why, /*verify_checksum=*/false);
  if (payload_ok && !lutham::check_indices(parsed.layer, &why)) std::abort();  // parse_payload checked them
  lutham::QuantView words;
  const bool codebook_ok = lutham::parse_codebook(codebook.bytes, codebook.size, &words, &why);
  if (!payload_ok || !codebook_ok) return 0;
  // As LuthamBackend::init: the named-data codebook must have the layer's shape.
  if (words.rows != parsed.layer.codebook_size || words.cols != parsed.layer.codebook_dim) return 0;
  parsed.layer.codebook = words;
  std::vector<float> columns(static_cast<size_t>(words.rows) * words.cols);
  lutham::dequantize_columns(words, columns.data());
  parsed.layer.codebook_columns = columns.data();
  std::vector<uint64_t> int8_memory;  // the int8 mode's constants, as LuthamBackend::init makes them
  if (parsed.layer.compute == lutham::Compute::Int8) {
    int8_memory.resize(lutham::kan_int8_bytes(parsed.layer) / 8 + 8);
    void* at = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(int8_memory.data()) + 63) & ~uintptr_t{63});
    lutham::kan_int8_prepare(&parsed.layer, at);
  }

  const lutham::KanLayerView& layer = parsed.layer;
  constexpr size_t kBatch = 2;
  std::vector<float> x(kBatch * layer.in_features);
  for (size_t s = 0; s < kBatch; ++s)
    for (uint32_t i = 0; i < layer.in_features; ++i) x[s * layer.in_features + i] = input_value(s, i);
  // Every kernel variant this CPU runs (scripts/fuzz.sh builds them all), each compared bit
  // for bit with the first (NaN counts as equal to NaN: the portable fmaf and the FMA
  // instruction may propagate different NaN payloads).
  lutham::KernelIsa variants[8];
  const size_t n_variants = std::min<size_t>(8, lutham::kan_isa_variants(variants, 8));
  std::vector<float> first;
  const char* first_name = "";
  void* scratch = nullptr;
  if (posix_memalign(&scratch, 16, lutham::kan_scratch_bytes(layer, kBatch)) != 0) std::abort();
  for (size_t v = 0; v < n_variants; ++v) {
    if (!variants[v].runnable || !lutham::kan_force_isa(variants[v].name)) continue;
    std::vector<float> y(kBatch * layer.out_features);
    lutham::kan_forward(layer, x.data(), kBatch, y.data(), scratch);
    if (first.empty()) {
      first = y;
      first_name = variants[v].name;
      continue;
    }
    for (size_t j = 0; j < y.size(); ++j) {
      if (std::memcmp(&y[j], &first[j], sizeof(float)) != 0 && !(std::isnan(y[j]) && std::isnan(first[j]))) {
        std::fprintf(stderr, "kernel variant %s differs from %s at output %zu: %.9g vs %.9g\n", variants[v].name,
                     first_name, j, y[j], first[j]);
        std::abort();
      }
    }
  }
  std::free(scratch);
  return 0;
}
