// lutham_membw: the machine's read-only memory bandwidth, the bound a memory-bound kernel is
// measured against (bytes it reads / this rate).
//
//   lutham_membw [--threads N] [--mib M] [--rounds R] [--json]
//
// Every round, N threads (default: the kernel's thread count, i.e. the hardware threads capped
// by LUTHAM_THREADS) each sum their own contiguous slice of one buffer of M MiB (default: the
// larger of 1 GiB and 4x the last-level cache that sysfs reports; VMs often cache far more
// than sysfs says, so the floor is what keeps the reads coming from DRAM). A round is timed
// from the moment all threads are released until the last one finishes. Prints the best and
// the median round (bytes read / s); --json prints one JSON line.
//
// The loop only loads (eight independent 64-bit xor chains, which the compiler vectorizes),
// so no write traffic is counted or paid for.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "llc.h"

namespace {

[[noreturn]] void bad_argument(const std::string& msg) {
  std::fprintf(stderr, "lutham_membw: %s\n", msg.c_str());
  std::exit(2);
}

uint64_t parse_number(const std::string& flag, const char* text, uint64_t lo, uint64_t hi) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (*text == '\0' || *text == '-' || *end != '\0' || errno != 0 || v < lo || v > hi)
    bad_argument(flag + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got '" +
                 text + "'");
  return v;
}

// The kernel's default: every hardware thread, capped by LUTHAM_THREADS as LuthamBackend does.
unsigned default_threads() {
  unsigned n = std::max(1u, std::thread::hardware_concurrency());
  if (const char* env = std::getenv("LUTHAM_THREADS")) {
    char* end = nullptr;
    const long cap = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && cap >= 1) n = std::min<unsigned>(n, static_cast<unsigned>(cap));
  }
  return n;
}

__attribute__((noinline)) uint64_t read_slice(const uint64_t* p, size_t n) {
  uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) a[j] ^= p[i + j];
  for (; i < n; ++i) a[0] ^= p[i];
  return a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7];
}

}  // namespace

int main(int argc, char** argv) {
  unsigned threads = default_threads();
  const uint64_t llc = lutham::bench::llc_bytes();
  uint64_t mib = std::max<uint64_t>(1024, 4 * llc / (1024 * 1024));
  unsigned rounds = 7;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) bad_argument("missing value after " + k);
      return argv[++i];
    };
    if (k == "--threads") threads = static_cast<unsigned>(parse_number(k, value(), 1, 1024));
    else if (k == "--mib") mib = parse_number(k, value(), 1, 1u << 20);
    else if (k == "--rounds") rounds = static_cast<unsigned>(parse_number(k, value(), 1, 1000));
    else if (k == "--json") json = true;
    else if (k == "-h" || k == "--help") {
      std::puts("usage: lutham_membw [--threads N] [--mib M] [--rounds R] [--json]");
      return 0;
    } else bad_argument("unknown argument " + k + " (--help lists them)");
  }
  const size_t words = static_cast<size_t>(mib) * 1024 * 1024 / sizeof(uint64_t);
  uint64_t* buf = static_cast<uint64_t*>(std::aligned_alloc(64, words * sizeof(uint64_t)));
  if (buf == nullptr) {
    std::fprintf(stderr, "lutham_membw: cannot allocate %llu MiB\n", static_cast<unsigned long long>(mib));
    return 1;
  }
  // Fault every page in (and make the contents non-zero) before timing.
  for (size_t i = 0; i < words; ++i) buf[i] = i * 0x9e3779b97f4a7c15ull;

  std::atomic<unsigned> round{0}, done{0};
  std::atomic<bool> quit{false};
  std::vector<uint64_t> sinks(threads * 8, 0);
  const size_t per = (words / threads) & ~static_cast<size_t>(7);
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) {
    pool.emplace_back([&, t] {
      unsigned seen = 0;
      for (;;) {
        unsigned r;
        while ((r = round.load(std::memory_order_acquire)) == seen && !quit.load(std::memory_order_relaxed)) {
        }
        if (quit.load(std::memory_order_relaxed)) return;
        seen = r;
        sinks[t * 8] ^= read_slice(buf + t * per, per);
        done.fetch_add(1, std::memory_order_acq_rel);
      }
    });
  }
  std::vector<double> seconds;
  for (unsigned r = 0; r <= rounds; ++r) {  // round 0 is a warm-up of the threads
    done.store(0);
    const auto t0 = std::chrono::steady_clock::now();
    round.store(r + 1, std::memory_order_release);
    sinks[0] ^= read_slice(buf, per);
    while (done.load(std::memory_order_acquire) != threads - 1) {
    }
    const auto t1 = std::chrono::steady_clock::now();
    if (r > 0) seconds.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  quit.store(true);
  for (auto& th : pool) th.join();
  uint64_t sink = 0;
  for (uint64_t s : sinks) sink ^= s;

  const double bytes = static_cast<double>(per) * threads * sizeof(uint64_t);
  std::vector<double> sorted = seconds;
  std::sort(sorted.begin(), sorted.end());
  const double best = bytes / sorted.front();
  const double median = bytes / sorted[sorted.size() / 2];
  std::free(buf);
  if (json) {
    std::printf("{\"threads\": %u, \"buffer_bytes\": %.0f, \"llc_bytes\": %llu, \"rounds\": %u, "
                "\"best_bytes_per_second\": %.6g, \"median_bytes_per_second\": %.6g, \"sink\": %llu}\n",
                threads, bytes, static_cast<unsigned long long>(llc), rounds, best, median,
                static_cast<unsigned long long>(sink & 1));
  } else {
    std::printf("read bandwidth: best %.2f GB/s, median %.2f GB/s (%u threads, %.0f MiB buffer, LLC %llu KiB, %u rounds)\n",
                best / 1e9, median / 1e9, threads, bytes / (1024.0 * 1024.0),
                static_cast<unsigned long long>(llc / 1024), rounds);
  }
  return 0;
}
