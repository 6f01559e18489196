// Unit checks of the kernel pieces that need no ExecuTorch program: the B-spline window
// against a full (all-bases) Cox-de Boor evaluation, partition of unity, zeros outside the
// grid, bit readers, SHA-256 (codebook keys). Exit status 0 = pass. Runs on the build machine
// and under qemu.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

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
  // Bit readers: LSB-first, signed 3-bit values -4..3 and unsigned 11-bit values.
  {
    std::vector<uint8_t> buf(64, 0);
    const int vals[] = {-4, 3, -1, 0, 2, -3, 1, -2, 3, -4};
    uint64_t bit = 0;
    for (int v : vals) {
      for (int b = 0; b < 3; ++b, ++bit)
        if ((static_cast<unsigned>(v) >> b) & 1) buf[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
    }
    for (int i = 0; i < 10; ++i) CHECK(lutham::read_signed_bits(buf.data(), i, 3) == vals[i], "signed 3-bit %d", i);
    std::vector<uint8_t> u(64, 0);
    const uint32_t uv[] = {0, 2047, 1, 1024, 777};
    bit = 0;
    for (uint32_t v : uv) {
      for (int b = 0; b < 11; ++b, ++bit)
        if ((v >> b) & 1) u[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
    }
    for (int i = 0; i < 5; ++i) CHECK(lutham::read_unsigned_bits(u.data(), i, 11) == uv[i], "unsigned 11-bit %d", i);
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
