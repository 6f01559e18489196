// lutham_kernel_bench: kan_forward alone, layer after layer as LuthamBackend runs a head, on
// the thread pool the backend uses: where the kernel's time goes without ExecuTorch around it.
//
//   lutham_kernel_bench DIR [--batch N] [--threads T] [--runs R] [--cold MIB] [--isa NAME]
//
// DIR: make_bench_layers.py's layers (layers.txt, N.payload, N.codebook). Each run gives the
// first layer a fresh input (one value moved), so nothing is reused across runs; --cold writes
// MIB MiB before every run (outside the timed region). Prints the median and best time of one
// pass over all layers and each layer's median, and the median process CPU time of a pass
// (on a shared machine, with --threads 1, the steadier figure: time spent descheduled is not
// in it). Runs under callgrind too (--runs 1).
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kan_kernel.h"
#include "payload.h"
#include "task_pool.h"

namespace {

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

[[noreturn]] void fail(const std::string& msg) {
  std::fprintf(stderr, "lutham_kernel_bench: %s\n", msg.c_str());
  std::exit(2);
}

struct Layer {
  void* payload = nullptr;
  void* codebook = nullptr;
  std::vector<float> columns;
  void* int8_memory = nullptr;  // the int8 mode's constants (LuthamBackend::init makes the same)
  lutham::KanLayerView view;
};

void* aligned_copy(const std::vector<uint8_t>& b) {
  void* p = std::aligned_alloc(64, (b.size() + 63) & ~size_t{63});
  std::memcpy(p, b.data(), b.size());
  return p;
}

uint32_t g_threads = 1;
void run_on_pool(void*, int64_t n, void* job, void (*task)(void*, int64_t)) {
  lutham::run_on_task_pool(g_threads - 1, n, job, task);
}

double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lutham;
  if (argc < 2) fail("usage: lutham_kernel_bench DIR [--batch N] [--threads T] [--runs R] [--cold MIB] [--isa NAME]");
  const std::string dir = argv[1];
  size_t batch = 1, runs = 200, cold_mib = 0;
  for (int a = 2; a + 1 < argc; a += 2) {
    const std::string flag = argv[a];
    const char* v = argv[a + 1];
    if (flag == "--batch") batch = std::strtoul(v, nullptr, 10);
    else if (flag == "--threads") g_threads = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    else if (flag == "--runs") runs = std::strtoul(v, nullptr, 10);
    else if (flag == "--cold") cold_mib = std::strtoul(v, nullptr, 10);
    else if (flag == "--isa") { if (!kan_force_isa(v)) fail(std::string("no runnable variant ") + v); }
    else fail("unknown flag " + flag);
  }
  if (batch == 0 || g_threads == 0 || runs == 0) fail("--batch, --threads and --runs must be positive");
  std::vector<Layer> layers;
  {
    std::FILE* f = std::fopen((dir + "/layers.txt").c_str(), "r");
    if (f == nullptr) fail("no " + dir + "/layers.txt (make_bench_layers.py writes it)");
    char name[256];
    while (std::fscanf(f, "%255s", name) == 1) {
      Layer L;
      const auto p = read_file(dir + "/" + name + ".payload"), c = read_file(dir + "/" + name + ".codebook");
      L.payload = aligned_copy(p);
      L.codebook = aligned_copy(c);
      ParsedPayload parsed;
      QuantView words;
      std::string why;
      if (!parse_payload(L.payload, p.size(), &parsed, &why) || !parse_codebook(L.codebook, c.size(), &words, &why))
        fail(std::string(name) + ": " + why);
      L.view = parsed.layer;
      L.view.codebook = words;
      L.columns.resize(static_cast<size_t>(words.rows) * words.cols);
      dequantize_columns(words, L.columns.data());
      L.view.codebook_columns = L.columns.data();
      if (L.view.compute == Compute::Int8) {
        L.int8_memory = std::aligned_alloc(64, (kan_int8_bytes(L.view) + 63) & ~size_t{63});
        kan_int8_prepare(&L.view, L.int8_memory);
      }
      layers.push_back(std::move(L));
    }
    std::fclose(f);
  }
  TaskRunner runner;
  runner.run = run_on_pool;
  runner.threads = g_threads;
  std::vector<std::vector<float>> acts(layers.size() + 1);
  acts[0].resize(batch * layers[0].view.in_features);
  for (size_t j = 0; j < acts[0].size(); ++j) acts[0][j] = -1.1f + 2.2f * static_cast<float>((j * 2654435761u) % 1000) / 1000.0f;
  std::vector<void*> scratch;
  for (size_t l = 0; l < layers.size(); ++l) {
    acts[l + 1].resize(batch * layers[l].view.out_features);
    scratch.push_back(std::aligned_alloc(64, (kan_scratch_bytes(layers[l].view, batch, g_threads) + 63) & ~size_t{63}));
  }
  std::vector<uint8_t> evict(cold_mib << 20);
  std::vector<double> total, cpu;
  std::vector<std::vector<double>> per(layers.size());
  double checksum = 0;
  for (size_t r = 0; r < runs + 3; ++r) {
    acts[0][0] = -1.1f + static_cast<float>(r) * 1e-6f;
    if (!evict.empty()) std::memset(evict.data(), static_cast<int>(r), evict.size());
    const double c0 = cpu_ms();
    const auto t0 = std::chrono::steady_clock::now();
    auto t = t0;
    for (size_t l = 0; l < layers.size(); ++l) {
      kan_forward(layers[l].view, acts[l].data(), batch, acts[l + 1].data(), scratch[l], &runner);
      const auto t1 = std::chrono::steady_clock::now();
      if (r >= 3) per[l].push_back(std::chrono::duration<double, std::milli>(t1 - t).count());
      t = t1;
    }
    if (r >= 3) {
      total.push_back(std::chrono::duration<double, std::milli>(t - t0).count());
      cpu.push_back(cpu_ms() - c0);
    }
    checksum += acts.back()[0];
  }
  std::printf("isa %s, batch %zu, threads %u, %zu runs%s: median %.4f ms, best %.4f ms (", kan_isa(), batch, g_threads,
              runs, cold_mib ? ", cold" : "", median(total), *std::min_element(total.begin(), total.end()));
  for (size_t l = 0; l < layers.size(); ++l) std::printf("%slayer %zu %.4f ms", l ? ", " : "", l, median(per[l]));
  std::printf("), cpu %.4f ms [checksum %.6g]\n", median(cpu), checksum);
  return 0;
}
