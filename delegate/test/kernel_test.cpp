// Unit checks of the kernel pieces that need no ExecuTorch program: the B-spline window
// against a full (all-bases) Cox-de Boor evaluation, partition of unity, zeros outside the
// grid, bit readers. Exit status 0 = pass. Runs on the build machine and under qemu.
#include <cmath>
#include <cstdio>
#include <vector>

#include "kan_kernel.h"

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
  if (failures) {
    std::fprintf(stderr, "kernel_test: %d failures\n", failures);
    return 1;
  }
  std::printf("kernel_test: ok\n");
  return 0;
}
