// lutham_app: an ExecuTorch application that runs a LUTHAM program the way it would run any
// other delegate's: ExecuTorch's Module loads the .pte (and .ptd), LuthamBackend comes from
// find_package(lutham_backend) and registers itself, load-time options go through
// LoadBackendOptionsMap. Nothing here calls LUTHAM code.
//
//   lutham_app --model m.pte [--data m.ptd] [--method forward] [--input x.bin ...] [--seed S]
//              [--threads N]
//
// Inputs are raw little-endian float32 files (numpy: x.astype('<f4').tofile('x.bin')), one per
// method input; without --input they are seeded uniform values in [-1.1, 1.1) (lutham_runner's
// stream). --threads N is LuthamBackend's runtime spec num_threads. Prints every output's shape
// and values (%.9g: float32 round-trips exactly).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr.h>
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/backend/options.h>
#include <executorch/runtime/platform/runtime.h>

using executorch::aten::ScalarType;
using executorch::aten::SizesType;
using executorch::extension::Module;
using executorch::extension::TensorPtr;
using executorch::runtime::BackendOption;
using executorch::runtime::BackendOptions;
using executorch::runtime::Error;
using executorch::runtime::EValue;
using executorch::runtime::LoadBackendOptionsMap;
using executorch::runtime::Program;

[[noreturn]] static void die(const std::string& msg, int status) {
  std::fprintf(stderr, "lutham_app: %s\n", msg.c_str());
  std::exit(status);
}

static void check(Error e, const std::string& what) {
  if (e != Error::Ok) die(what + " failed (ExecuTorch error " + std::to_string(static_cast<int>(e)) + ")", 1);
}

static long whole_number(const std::string& flag, const char* text) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 0) die(flag + " takes a whole number, got '" + text + "'", 2);
  return v;
}

int main(int argc, char** argv) {
  std::string model, data, method = "forward";
  std::vector<std::string> input_files;
  unsigned long long seed = 0;
  long threads = -1;  // -1: no runtime spec (LuthamBackend's default)
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) die("missing value after " + flag, 2);
    const char* value = argv[++i];
    if (flag == "--model") model = value;
    else if (flag == "--data") data = value;
    else if (flag == "--method") method = value;
    else if (flag == "--input") input_files.push_back(value);
    else if (flag == "--seed") seed = static_cast<unsigned long long>(whole_number(flag, value));
    else if (flag == "--threads") threads = whole_number(flag, value);
    else die("unknown argument " + flag, 2);
  }
  if (model.empty()) die("--model is required", 2);

  executorch::runtime::runtime_init();
  Module module = data.empty() ? Module(model, Module::LoadMode::Mmap) : Module(model, data, Module::LoadMode::Mmap);
  // Load-time options per backend: the Module copies them and hands them to every delegate's init.
  BackendOptions<1> lutham_options;
  LoadBackendOptionsMap options;
  if (threads >= 0) {
    check(lutham_options.set_option("num_threads", static_cast<int>(threads)), "setting num_threads");
    check(options.set_options("LuthamBackend", lutham_options.view()), "setting LuthamBackend's options");
  }
  check(module.load(options, Program::Verification::InternalConsistency), "loading " + model);
  auto names = module.method_names();
  if (!names.ok() || names->count(method) == 0) {
    std::string known;
    if (names.ok())
      for (const std::string& n : *names) known += (known.empty() ? "" : ", ") + n;
    die("the program has no method '" + method + "' (it has: " + known + ")", 2);
  }
  check(module.load_method(method), "loading method '" + method + "'");
  auto meta = module.method_meta(method);
  check(meta.error(), "reading the method's inputs");

  if (!input_files.empty() && input_files.size() != meta->num_inputs())
    die(method + " has " + std::to_string(meta->num_inputs()) + " inputs, " +
        std::to_string(input_files.size()) + " --input given", 2);
  std::vector<TensorPtr> tensors;
  std::vector<EValue> inputs;
  unsigned long long state = seed;
  for (size_t i = 0; i < meta->num_inputs(); ++i) {
    auto info = meta->input_tensor_meta(i);
    if (!info.ok() || info->scalar_type() != ScalarType::Float) die("input " + std::to_string(i) + " is not a float32 tensor", 2);
    std::vector<SizesType> sizes(info->sizes().begin(), info->sizes().end());
    size_t numel = 1;
    for (SizesType s : sizes) numel *= static_cast<size_t>(s);
    std::vector<float> values(numel);
    if (!input_files.empty()) {
      std::ifstream f(input_files[i], std::ios::binary | std::ios::ate);
      if (!f || static_cast<size_t>(f.tellg()) != numel * sizeof(float))
        die(input_files[i] + ": cannot read, or not " + std::to_string(numel) + " float32 values for input " + std::to_string(i), 2);
      f.seekg(0);
      f.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(numel * sizeof(float)));
    } else {
      for (float& v : values) {  // splitmix64, the same stream on every platform
        unsigned long long z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        v = static_cast<float>(((z ^ (z >> 31)) >> 40) * (1.0 / 16777216.0) * 2.2 - 1.1);
      }
    }
    tensors.push_back(executorch::extension::make_tensor_ptr(sizes, std::move(values)));
    inputs.emplace_back(*tensors.back());
  }

  auto outputs = module.execute(method, inputs);
  check(outputs.error(), "running '" + method + "'");
  for (size_t o = 0; o < outputs->size(); ++o) {
    const EValue& value = (*outputs)[o];
    if (!value.isTensor() || value.toTensor().scalar_type() != ScalarType::Float) {
      std::printf("output %zu: not a float32 tensor\n", o);
      continue;
    }
    const auto& t = value.toTensor();
    std::printf("output %zu: float32 [", o);
    for (ssize_t d = 0; d < t.dim(); ++d) std::printf("%s%d", d ? ", " : "", static_cast<int>(t.size(d)));
    std::printf("]\n");
    for (ssize_t k = 0; k < t.numel(); ++k) std::printf("%s%.9g", k ? " " : "", t.const_data_ptr<float>()[k]);
    std::printf("\n");
  }
  // Backend options can be read back the ExecuTorch way too.
  BackendOption last{};
  std::snprintf(last.key, sizeof(last.key), "last_num_threads");
  last.value = 0;
  if (executorch::runtime::get_option("LuthamBackend", {&last, 1}) == Error::Ok)
    std::printf("LuthamBackend threads: %d\n", std::get<int>(last.value));
  return 0;
}
