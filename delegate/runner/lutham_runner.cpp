// lutham_runner: runs a .pte (lutham.pte or dense.pte) with ExecuTorch and LuthamBackend.
//
//   lutham_runner --model m.pte [--data m.ptd] [--method NAME] [--input x.bin ...] [--output y.bin]
//                 [--repeat N] [--seed S] [--warmup W] [--cold] [--evict-mib M] [--fresh-inputs]
//                 [--batch N] [--etdump out.etdp] [--json]
//
// The program is mmap-loaded; --method runs one of its methods (default forward; `lutham export
// --methods per-head` writes backbone, head_0..head_{N-1} and forward). A name the program lacks
// is refused before any run, listing the methods it has. Inputs are raw little-endian float32 files holding exactly
// the input's element count (one --input per program input, in order); without --input,
// every input is filled with seeded uniform values in [-1.1, 1.1). Prints each output's
// shape, a checksum (sum, sum of |v|, FNV-1a 64 of the float32 bytes) and the median
// time of --repeat runs (default 10). --output writes all outputs, concatenated, as raw
// float32. --batch N gives every input N rows (its first dimension): a program exported with a
// dynamic batch declares its largest batch, and runs any batch up to it.
//
// Timing: --warmup W untimed runs first (default 0). --cold evicts the caches before every
// run (warm-up and timed): a buffer of --evict-mib M MiB (default: twice the last-level cache
// that sysfs reports, at least 512 MiB, since VMs cache far more than sysfs says) is written
// end to end, outside the timed region. Besides the whole method's median, the runner reports
// the median time spent inside LuthamBackend::execute per run (lutham_execute_stats), so the
// kernel is seen apart from the rest of the program. --fresh-inputs changes the first input
// value before every run (x[0] + (run + 1) * 2^-20, same for every variant) so that no run can
// reuse what an earlier one computed from the same input (LuthamBackend keeps the last inputs'
// bases and tables for the heads that share them), as with real inputs; the outputs printed
// are those of the last run.
//
// --etdump FILE attaches ExecuTorch's ETDumpGen to the program and writes its ETDump (every
// run, warm-up included: operator, delegate-call and LuthamBackend layer/phase events) to
// FILE through a temp file + rename; executorch.devtools.Inspector reads it (with the
// ETRecord of `lutham export --etrecord` for layer names). The folders of --etdump and
// --output are checked before the program is loaded: a run never ends in a write that cannot be.
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <sys/stat.h>
#include <vector>

#include <executorch/devtools/etdump/etdump_flatcc.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr.h>
#include <executorch/runtime/core/evalue.h>
#include <executorch/runtime/executor/program.h>
#include <executorch/runtime/platform/runtime.h>

#include "../bench/llc.h"
#include "program_check.h"

extern "C" int lutham_backend_registered(void);
extern "C" void lutham_execute_stats(uint64_t out[2]);
extern "C" const char* lutham_kernel_isa(void);

namespace {

using executorch::aten::ScalarType;
using executorch::aten::SizesType;
using executorch::extension::Module;
using executorch::extension::TensorPtr;
using executorch::runtime::Error;
using executorch::runtime::EValue;

struct Args {
  std::string model;
  std::string data;
  std::string method = "forward";
  std::vector<std::string> inputs;
  std::string output;
  int repeat = 10;
  uint64_t seed = 0;
  int warmup = 0;
  bool cold = false;
  uint64_t evict_mib = 0;  // 0: the default (see the header)
  bool fresh_inputs = false;
  uint64_t batch = 0;  // 0: the inputs' declared first dimension
  bool json = false;
  std::string etdump;
};

constexpr const char* kUsage =
    "usage: lutham_runner --model m.pte [--data m.ptd] [--method NAME] [--input x.bin ...] [--output y.bin]\n"
    "                     [--repeat N] [--seed S] [--warmup W] [--cold] [--evict-mib M] [--fresh-inputs]\n"
    "                     [--batch N] [--etdump out.etdp] [--json]\n";

// Bad arguments: one line on stderr, exit status 2.
[[noreturn]] void bad_argument(const std::string& msg) {
  std::fprintf(stderr, "lutham_runner: %s\n", msg.c_str());
  std::exit(2);
}

// A whole decimal number in [lo, hi]; anything else (empty, sign where none is allowed,
// trailing characters, out of range) is an error naming the flag.
uint64_t parse_number(const std::string& flag, const std::string& text, uint64_t lo, uint64_t hi) {
  const std::string what = flag + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
                           ", got '" + text + "'";
  if (text.empty()) bad_argument(what);
  uint64_t value = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') bad_argument(what);
    const uint64_t digit = static_cast<uint64_t>(ch - '0');
    if (value > (UINT64_MAX - digit) / 10) bad_argument(what);
    value = value * 10 + digit;
  }
  if (value < lo || value > hi) bad_argument(what);
  return value;
}

// A file to be written at the end of the runs: its folder must exist now (an empty path: no file).
void check_writable_folder(const std::string& flag, const std::string& path) {
  if (path.empty()) return;
  const size_t slash = path.find_last_of('/');
  const std::string folder = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  struct stat st {};
  if (stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    bad_argument("cannot write " + flag + " " + path + ": no such directory " + folder);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) bad_argument("missing value after " + k);
      return argv[++i];
    };
    if (k == "--model") a.model = value();
    else if (k == "--data") a.data = value();
    else if (k == "--method") a.method = value();
    else if (k == "--input") a.inputs.push_back(value());
    else if (k == "--output") a.output = value();
    else if (k == "--repeat") a.repeat = static_cast<int>(parse_number(k, value(), 1, 1000000000));
    else if (k == "--seed") a.seed = parse_number(k, value(), 0, UINT64_MAX);
    else if (k == "--warmup") a.warmup = static_cast<int>(parse_number(k, value(), 0, 1000000));
    else if (k == "--cold") a.cold = true;
    else if (k == "--fresh-inputs") a.fresh_inputs = true;
    else if (k == "--evict-mib") a.evict_mib = parse_number(k, value(), 1, 1u << 20);
    else if (k == "--batch") a.batch = parse_number(k, value(), 1, 1u << 30);
    else if (k == "--json") a.json = true;
    else if (k == "--etdump") a.etdump = value();
    else if (k == "-h" || k == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else bad_argument("unknown argument " + k + " (--help lists them)");
  }
  if (a.model.empty()) bad_argument("--model is required (--help lists the arguments)");
  if (a.evict_mib != 0 && !a.cold) bad_argument("--evict-mib needs --cold");
  if (a.method.empty()) bad_argument("--method needs a name (e.g. forward, head_0)");
  check_writable_folder("--etdump", a.etdump);
  check_writable_folder("--output", a.output);
  return a;
}

// splitmix64: the same stream on every platform.
uint64_t next(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

std::string shape_string(const std::vector<SizesType>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Writes every cache line of a buffer larger than the caches, so that what a run reads next
// comes from DRAM. The byte changes each time so the stores cannot be elided.
struct Evictor {
  std::vector<uint8_t> buffer;
  uint8_t value = 1;
  explicit Evictor(size_t bytes) : buffer(bytes, 0) {}
  void run() {
    std::memset(buffer.data(), value++, buffer.size());
    asm volatile("" : : "r"(buffer.data()) : "memory");
  }
};

// The ETDump the module's tracer recorded, written to `path` through a temp file + rename.
bool write_etdump(Module& module, const std::string& path) {
  auto* gen = static_cast<executorch::etdump::ETDumpGen*>(module.event_tracer());
  const executorch::etdump::ETDumpResult result = gen->get_etdump_data();
  if (result.buf == nullptr || result.size == 0) {
    std::fprintf(stderr, "lutham_runner: the ETDump is empty (no event was recorded)\n");
    return false;
  }
  const std::string temp = path + ".tmp";
  std::FILE* f = std::fopen(temp.c_str(), "wb");
  const bool written = f != nullptr && std::fwrite(result.buf, 1, result.size, f) == result.size;
  const bool closed = f != nullptr && std::fclose(f) == 0;
  std::free(result.buf);
  if (!written || !closed || std::rename(temp.c_str(), path.c_str()) != 0) {
    std::remove(temp.c_str());
    std::fprintf(stderr, "lutham_runner: cannot write --etdump %s\n", path.c_str());
    return false;
  }
  return true;
}

int fail(const char* what, Error e) {
  std::fprintf(stderr, "lutham_runner: %s failed (error %d)\n", what, static_cast<int>(e));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  executorch::runtime::runtime_init();
  if (!lutham_backend_registered()) {
    std::fprintf(stderr, "lutham_runner: LuthamBackend did not register\n");
    return 1;
  }
  const auto t_load0 = std::chrono::steady_clock::now();
  if (std::string why; !lutham::check_program_file(args.model, &why)) {
    std::fprintf(stderr, "lutham_runner: %s: %s\n", args.model.c_str(), why.c_str());
    return 1;
  }
  std::unique_ptr<executorch::etdump::ETDumpGen> etdump;
  if (!args.etdump.empty()) etdump = std::make_unique<executorch::etdump::ETDumpGen>();
  std::unique_ptr<Module> module =
      args.data.empty() ? std::make_unique<Module>(args.model, Module::LoadMode::Mmap, std::move(etdump))
                        : std::make_unique<Module>(args.model, args.data, Module::LoadMode::Mmap, std::move(etdump));
  // InternalConsistency runs the flatbuffers verifier over the whole program first: without it a
  // corrupted offset in the program (outside our payloads) is followed blindly in Method::init.
  if (Error e = module->load(executorch::runtime::Program::Verification::InternalConsistency); e != Error::Ok)
    return fail("loading the program (verified)", e);
  const std::string& method = args.method;
  if (auto names = module->method_names(); !names.ok() || names->count(method) == 0) {
    if (!names.ok()) return fail("reading the method names", names.error());
    // In reading order: head_2 before head_10.
    std::vector<std::string> sorted(names->begin(), names->end());
    auto key = [](const std::string& n) {
      const size_t digits = n.find_last_not_of("0123456789") + 1;
      return std::make_pair(n.substr(0, digits), digits < n.size() && n.size() - digits < 10 ? std::stoul(n.substr(digits)) : 0ul);
    };
    std::sort(sorted.begin(), sorted.end(), [&](const std::string& a, const std::string& b) {
      return key(a) != key(b) ? key(a) < key(b) : a < b;
    });
    std::string known;
    for (const std::string& n : sorted) known += (known.empty() ? "" : ", ") + n;
    bad_argument(args.model + " has no method '" + method + "' (it has: " + known + ")");
  }
  if (Error e = module->load_method(method); e != Error::Ok) return fail(("loading method '" + method + "'").c_str(), e);
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_load0).count();
  auto meta = module->method_meta(method);
  if (!meta.ok()) return fail("reading method meta", meta.error());
  // MethodMeta checks each input/output value index against the plan; Method::get_output does
  // not (ET_CHECK: abort), so an in-bounds-but-wrong index from a flipped byte stops here.
  for (size_t i = 0; i < meta->num_inputs(); ++i)
    if (auto tag = meta->input_tag(i); !tag.ok()) return fail("reading input meta", tag.error());
  for (size_t i = 0; i < meta->num_outputs(); ++i)
    if (auto tag = meta->output_tag(i); !tag.ok()) return fail("reading output meta", tag.error());

  const size_t n_inputs = meta->num_inputs();
  if (!args.inputs.empty() && args.inputs.size() != n_inputs) {
    std::fprintf(stderr, "lutham_runner: the program has %zu inputs, %zu --input given\n", n_inputs,
                 args.inputs.size());
    return 2;
  }
  std::vector<TensorPtr> tensors;
  std::vector<EValue> inputs;
  uint64_t rng = args.seed;
  for (size_t i = 0; i < n_inputs; ++i) {
    auto info = meta->input_tensor_meta(i);
    if (!info.ok()) return fail("reading input meta (only tensor inputs are supported)", info.error());
    if (info->scalar_type() != ScalarType::Float) {
      std::fprintf(stderr, "lutham_runner: input %zu is not float32\n", i);
      return 2;
    }
    std::vector<SizesType> sizes(info->sizes().begin(), info->sizes().end());
    if (args.batch != 0) {
      if (sizes.empty()) bad_argument("--batch: input " + std::to_string(i) + " is a scalar (no batch dimension)");
      if (args.batch > static_cast<uint64_t>(sizes[0]))
        bad_argument("--batch " + std::to_string(args.batch) + ": input " + std::to_string(i) + " " + shape_string(sizes) +
                     " takes at most " + std::to_string(sizes[0]) + " rows (export with a larger batch)");
      sizes[0] = static_cast<SizesType>(args.batch);
    }
    size_t numel = 1;
    for (auto s : sizes) numel *= static_cast<size_t>(s);
    std::vector<float> values(numel);
    if (!args.inputs.empty()) {
      std::ifstream f(args.inputs[i], std::ios::binary | std::ios::ate);
      if (!f) {
        std::fprintf(stderr, "lutham_runner: cannot open %s\n", args.inputs[i].c_str());
        return 2;
      }
      const auto bytes = static_cast<size_t>(f.tellg());
      if (bytes != numel * sizeof(float)) {
        std::fprintf(stderr, "lutham_runner: %s has %zu bytes, input %zu %s needs %zu float32 (%zu bytes)\n",
                     args.inputs[i].c_str(), bytes, i, shape_string(sizes).c_str(), numel, numel * sizeof(float));
        return 2;
      }
      f.seekg(0);
      f.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(bytes));
    } else {
      for (auto& v : values) v = static_cast<float>((next(rng) >> 40) * (1.0 / 16777216.0) * 2.2 - 1.1);
    }
    tensors.push_back(executorch::extension::make_tensor_ptr(sizes, std::move(values)));
    inputs.emplace_back(*tensors.back());
  }

  std::unique_ptr<Evictor> evictor;
  uint64_t evict_bytes = 0;
  if (args.cold) {
    const uint64_t llc = lutham::bench::llc_bytes();
    evict_bytes = args.evict_mib ? args.evict_mib << 20 : std::max<uint64_t>(512ull << 20, 2 * llc);
    evictor = std::make_unique<Evictor>(static_cast<size_t>(evict_bytes));
  }
  std::vector<double> times, backend_times;
  std::vector<EValue> outputs;
  const float first_value = tensors.empty() || tensors[0]->numel() == 0 ? 0.0f : tensors[0]->const_data_ptr<float>()[0];
  for (int r = -args.warmup; r < args.repeat; ++r) {
    if (args.fresh_inputs && !tensors.empty() && tensors[0]->numel() > 0)
      tensors[0]->mutable_data_ptr<float>()[0] = first_value + static_cast<float>(r + args.warmup + 1) * 0x1p-20f;
    if (evictor) evictor->run();
    uint64_t before[2], after[2];
    lutham_execute_stats(before);
    const auto t0 = std::chrono::steady_clock::now();
    auto result = module->execute(method, inputs);
    const auto t1 = std::chrono::steady_clock::now();
    lutham_execute_stats(after);
    if (!result.ok()) return fail("execute", result.error());
    if (r < 0) continue;
    times.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    backend_times.push_back(static_cast<double>(after[1] - before[1]) * 1e-6);
    if (r + 1 == args.repeat) outputs = std::move(*result);
  }
  const double median = median_of(times);
  const double backend_median = median_of(backend_times);
  const double best = *std::min_element(times.begin(), times.end());

  std::FILE* out = nullptr;
  if (!args.output.empty() && (out = std::fopen(args.output.c_str(), "wb")) == nullptr) {
    std::fprintf(stderr, "lutham_runner: cannot write %s\n", args.output.c_str());
    return 2;
  }
  double sum = 0, abs_sum = 0;
  uint64_t hash = 0xcbf29ce484222325ull;
  std::vector<std::string> shapes;
  for (size_t o = 0; o < outputs.size(); ++o) {
    if (!outputs[o].isTensor()) {
      std::fprintf(stderr, "lutham_runner: output %zu is not a tensor\n", o);
      return 1;
    }
    const auto& t = outputs[o].toTensor();
    std::vector<SizesType> sizes(t.sizes().begin(), t.sizes().end());
    shapes.push_back(shape_string(sizes));
    if (t.scalar_type() != ScalarType::Float) {
      std::fprintf(stderr, "lutham_runner: output %zu is not float32\n", o);
      return 1;
    }
    const float* v = t.const_data_ptr<float>();
    for (ssize_t i = 0; i < t.numel(); ++i) {
      sum += v[i];
      abs_sum += std::fabs(v[i]);
    }
    hash = fnv1a(v, t.nbytes(), hash);
    if (out) std::fwrite(v, 1, t.nbytes(), out);
  }
  if (out) std::fclose(out);
  if (!args.etdump.empty() && !write_etdump(*module, args.etdump)) return 2;

  if (args.json) {
    std::printf("{\"model\": \"%s\", \"method\": \"%s\", \"outputs\": [", args.model.c_str(), method.c_str());
    for (size_t o = 0; o < shapes.size(); ++o) std::printf("%s%s", o ? ", " : "", shapes[o].c_str());
    std::printf("], \"sum\": %.9g, \"abs_sum\": %.9g, \"fnv1a64\": \"%016" PRIx64
                "\", \"load_ms\": %.3f, \"median_ms\": %.6f, \"repeat\": %d",
                sum, abs_sum, hash, load_ms, median, args.repeat);
    std::printf(", \"best_ms\": %.6f, \"backend_median_ms\": %.6f, \"warmup\": %d, \"cold\": %s, \"evict_bytes\": %llu, \"kernel_isa\": \"%s\", \"fresh_inputs\": %s}\n",
                best, backend_median, args.warmup, args.cold ? "true" : "false",
                static_cast<unsigned long long>(evict_bytes), lutham_kernel_isa(),
                args.fresh_inputs ? "true" : "false");
  } else {
    std::printf("model: %s (mmap, loaded in %.2f ms)\n", args.model.c_str(), load_ms);
    if (method != "forward") std::printf("method: %s\n", method.c_str());
    for (size_t o = 0; o < shapes.size(); ++o) std::printf("output %zu: float32 %s\n", o, shapes[o].c_str());
    std::printf("checksum: sum=%.9g abs_sum=%.9g fnv1a64=%016" PRIx64 "\n", sum, abs_sum, hash);
    std::printf("median: %.4f ms over %d runs\n", median, args.repeat);
    std::printf("LuthamBackend: %.4f ms median per run%s\n", backend_median,
                args.cold ? (" (cold: " + std::to_string(evict_bytes >> 20) + " MiB written before each run)").c_str() : "");
  }
  return 0;
}
