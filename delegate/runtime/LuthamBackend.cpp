// LuthamBackend: the ExecuTorch delegate that runs one SHARe-KAN layer per delegate.
//
// init:    validates the payload completely (payload.cpp), takes the layer's codebook from
//          the program's named data through the process-wide cache (codebook_cache.cpp),
//          and carves the handle and the kernel's scratch from the runtime allocator.
// execute: args = [x (..., in) float32, y (..., out) float32]; leading dims are flattened
//          into the batch. Work runs on LUTHAM's task pool (task_pool.h) with the delegate's
//          thread count ("Load-time options" below; results do not depend on it).
//          Scratch is one buffer per calling thread, grown when a call needs more than any
//          before it: no allocation in the steady state.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <variant>
#include <vector>

#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/core/event_tracer_hooks_delegate.h>
#include <executorch/runtime/core/error.h>
#include <executorch/runtime/core/evalue.h>
#include <executorch/runtime/core/exec_aten/util/tensor_util.h>
#include <executorch/runtime/kernel/thread_parallel_interface.h>
#include <executorch/runtime/platform/log.h>

#include "codebook_cache.h"
#include "kan_kernel.h"
#include "payload.h"
#include "task_pool.h"

namespace lutham {
namespace {

using executorch::aten::ScalarType;
using executorch::aten::SizesType;
using executorch::aten::Tensor;
using executorch::runtime::ArrayRef;
using executorch::runtime::Backend;
using executorch::runtime::BackendOption;
using executorch::runtime::BackendOptionContext;
using executorch::runtime::BackendExecutionContext;
using executorch::runtime::BackendInitContext;
using executorch::runtime::BackendInterface;
using executorch::runtime::CompileSpec;
using executorch::runtime::DelegateHandle;
using executorch::runtime::Error;
using executorch::runtime::EValue;
using executorch::runtime::EventTracer;
using executorch::runtime::EventTracerEntry;
using executorch::runtime::FreeableBuffer;
using executorch::runtime::MemoryAllocator;
using executorch::runtime::Result;
using executorch::runtime::Span;

struct LuthamHandle {
  LuthamHandle() = default;
  explicit LuthamHandle(FreeableBuffer&& processed) : payload(std::move(processed)) {}
  KanLayerView layer;
  FreeableBuffer payload;  // kept alive: `layer` points into it (unless copied)
  const CodebookEntry* codebook = nullptr;
  uint32_t threads = 0;  // the load's runtime spec num_threads; 0: the process default
};

// ---- Load-time options, the ExecuTorch way (runtime/backend/options.h, interface.h,
// backend_init_context.h of ExecuTorch 1.5.1). Threads a delegate splits its work for, first
// match wins:
//   1. the runtime spec "num_threads" (int) given at load: Module::load(LoadBackendOptionsMap)
//      with options for "LuthamBackend"; it applies to every delegate of that load;
//   2. the process default set by executorch::runtime::set_option("LuthamBackend", {num_threads});
//   3. ExecuTorch's thread pool size, capped by LUTHAM_THREADS (the fallback for programs that
//      cannot pass options, e.g. the Python runtime).
// get_option("LuthamBackend", ...) reads "num_threads" (the default of 2-3) and
// "last_num_threads" (the count the latest execute used; 0 before any).
constexpr int kMaxThreads = 256;
constexpr const char* kThreadsKey = "num_threads";
constexpr const char* kLastThreadsKey = "last_num_threads";
std::atomic<int> g_default_threads{0};  // set_option's value; 0: not set
std::atomic<uint32_t> g_last_threads{0};

// Threads from ExecuTorch's pool size, capped by LUTHAM_THREADS (read once).
uint32_t fallback_threads() {
  static const uint32_t threads = [] {
    int64_t n = executorch::extension::get_thread_count();
    if (const char* env = std::getenv("LUTHAM_THREADS")) {
      char* end = nullptr;
      const long cap = std::strtol(env, &end, 10);
      if (end != env && *end == '\0' && cap >= 1) n = std::min<int64_t>(n, cap);
    }
    return static_cast<uint32_t>(std::max<int64_t>(1, n));
  }();
  return threads;
}

uint32_t default_threads() {
  const int set = g_default_threads.load(std::memory_order_relaxed);
  return set > 0 ? static_cast<uint32_t>(set) : fallback_threads();
}

// A num_threads option's value, or 0 (with the reason logged) when it is not an int in range.
int threads_value(const BackendOption& option, const char* where) {
  const int* value = std::get_if<int>(&option.value);
  if (value == nullptr || *value < 1 || *value > kMaxThreads) {
    if (value == nullptr)
      ET_LOG(Error, "LuthamBackend: %s num_threads must be an int from 1 to %d, got a bool or a string", where, kMaxThreads);
    else
      ET_LOG(Error, "LuthamBackend: %s num_threads must be an int from 1 to %d, got %d", where, kMaxThreads, *value);
    return 0;
  }
  return *value;
}

// The kernel's tasks run on LUTHAM's own pool (task_pool.h: the caller never waits for a
// worker that is not awake); context points to the call's thread count.
void run_on_pool(void* context, int64_t n_tasks, void* job, void (*task)(void*, int64_t)) {
  run_on_task_pool(*static_cast<const uint32_t*>(context) - 1, n_tasks, job, task);
}

// A 64-byte aligned buffer that grows on demand (contents are lost when it grows).
struct Buffer {
  void* data = nullptr;
  size_t size = 0;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(data); }
  void* reserve(size_t bytes) {
    if (bytes > size || data == nullptr) {
      std::free(data);
      size = (std::max<size_t>(bytes, 64) + 63) & ~static_cast<size_t>(63);
      data = std::aligned_alloc(64, size);
      if (data == nullptr) size = 0;
    }
    return data;
  }
};

// The kernel's prepared inputs (bases, silu) of the last two layers run
// on this thread, with copies of what they depend on. The first layers of many heads on one
// backbone read the same features with the same grid and codebook: the second and later
// ones reuse the first one's preparation instead of recomputing it (checked by content, so a
// hit is always exact). Two slots, so a head's second layer does not evict its first layer's.
struct PreparedSlot {
  KanLayerView layer;  // knots and codebook_columns point into the copies below
  std::vector<float> knots, columns, x;
  size_t batch = 0;
  uint64_t used = 0;
  bool valid = false;
  Buffer buffer;
};

struct ThreadState {
  PreparedSlot slots[2];
  Buffer work;
  uint64_t clock = 0;
};

ThreadState& thread_state() {
  thread_local ThreadState state;
  return state;
}

size_t knot_count(const KanLayerView& L) {
  return static_cast<size_t>(L.knot_stride ? L.in_features : 1) * L.n_knots;
}

// The slot to use for this call and whether its prepared data is already right.
PreparedSlot* find_prepared(ThreadState& st, const KanLayerView& layer, const float* x, size_t batch, bool* hit) {
  const size_t n = batch * layer.in_features;
  for (PreparedSlot& slot : st.slots) {
    if (slot.valid && slot.batch == batch && slot.x.size() == n && kan_same_preparation(slot.layer, layer, batch) &&
        std::memcmp(slot.x.data(), x, n * sizeof(float)) == 0) {
      *hit = true;
      return &slot;
    }
  }
  *hit = false;
  PreparedSlot* lru = &st.slots[0];
  for (PreparedSlot& slot : st.slots)
    if (slot.used < lru->used) lru = &slot;
  return lru;
}

void remember(PreparedSlot& slot, const KanLayerView& layer, const float* x, size_t batch) {
  slot.layer = layer;
  slot.knots.assign(layer.knots, layer.knots + knot_count(layer));
  slot.columns.assign(layer.codebook_columns,
                      layer.codebook_columns + static_cast<size_t>(layer.codebook_size) * layer.codebook_dim);
  slot.layer.knots = slot.knots.data();
  slot.layer.codebook_columns = slot.columns.data();
  slot.x.assign(x, x + batch * layer.in_features);
  slot.batch = batch;
  slot.valid = true;
}

// ---- Profiling, the ExecuTorch way: with an event tracer attached (an ETDump), each execute
// logs delegate events by integer id, which preprocess's debug-handle map ties to the layer's
// graph node (py_bridge/lutham/lower/preprocess.py, DELEGATE_EVENTS: same ids and meanings).
// Without a tracer nothing here runs: no clock reads, no hooks.
constexpr executorch::runtime::DebugHandle kLayerEvent = 0;           // the whole layer
constexpr executorch::runtime::DebugHandle kBasisEvent = 1;           // phase A: bases + silu
constexpr executorch::runtime::DebugHandle kTablesAndEdgesEvent = 2;  // phase B: tables + edge stream

struct PhaseEvents {
  EventTracer* tracer;
  EventTracerEntry entry;
};

void log_phase(void* observer, KanPhase phase, bool begin) {
  auto* events = static_cast<PhaseEvents*>(observer);
  if (begin)
    events->entry = executorch::runtime::event_tracer_start_profiling_delegate(
        events->tracer, nullptr, phase == KanPhase::Basis ? kBasisEvent : kTablesAndEdgesEvent);
  else
    executorch::runtime::event_tracer_end_profiling_delegate(events->tracer, events->entry);
}

// Totals read by lutham_execute_stats (bench: head time vs the rest of a program).
std::atomic<uint64_t> g_execute_calls{0};
std::atomic<uint64_t> g_execute_nanos{0};

constexpr size_t kMaxRank = 16;

class LuthamBackend final : public BackendInterface {
 public:
  bool is_available() const override { return true; }

  Result<DelegateHandle*> init(BackendInitContext& context, FreeableBuffer* processed,
                               ArrayRef<CompileSpec> /*compile_specs*/) const override {
    MemoryAllocator* allocator = context.get_runtime_allocator();
    if (allocator == nullptr || processed == nullptr) {
      ET_LOG(Error, "LuthamBackend: init without a runtime allocator or payload");
      return Error::InvalidArgument;
    }
    uint32_t threads = 0;
    for (const BackendOption& option : context.runtime_specs()) {
      if (std::strcmp(option.key, kThreadsKey) != 0) {
        ET_LOG(Error, "LuthamBackend: unknown runtime spec '%s' (LuthamBackend takes num_threads)", option.key);
        return Error::InvalidArgument;
      }
      const int value = threads_value(option, "runtime spec");
      if (value == 0) return Error::InvalidArgument;
      threads = static_cast<uint32_t>(value);
    }
    // The payload is read in place; a misaligned one (possible for inline delegate data)
    // is copied into the runtime allocator first.
    const void* bytes = processed->data();
    const size_t size = processed->size();
    bool copied = false;
    if (bytes != nullptr && reinterpret_cast<uintptr_t>(bytes) % 16 != 0) {
      void* copy = allocator->allocate(size, 16);
      if (copy == nullptr) {
        ET_LOG(Error, "LuthamBackend: out of runtime memory copying a %zu-byte payload", size);
        return Error::MemoryAllocationFailed;
      }
      std::memcpy(copy, bytes, size);
      bytes = copy;
      copied = true;
    }
    ParsedPayload parsed;
    std::string why;
    if (!parse_payload(bytes, size, &parsed, &why)) {
      ET_LOG(Error, "LuthamBackend: invalid payload: %s", why.c_str());
      return Error::InvalidProgram;
    }
    const CodebookEntry* codebook = acquire_codebook(parsed.codebook_key, context.get_named_data_map(), &why);
    if (codebook == nullptr) {
      ET_LOG(Error, "LuthamBackend: invalid codebook: %s", why.c_str());
      return Error::InvalidProgram;
    }
    const QuantView& words = codebook_view(codebook);
    if (words.rows != parsed.layer.codebook_size || words.cols != parsed.layer.codebook_dim) {
      ET_LOG(Error, "LuthamBackend: invalid payload: layer expects a %u x %u codebook, named data holds %u x %u",
             parsed.layer.codebook_size, parsed.layer.codebook_dim, words.rows, words.cols);
      release_codebook(codebook);
      return Error::InvalidProgram;
    }
    parsed.layer.codebook = words;
    parsed.layer.codebook_columns = codebook_columns(codebook);
    if (parsed.layer.compute == Compute::Int8) {
      // The int8 mode's per-layer constants (requantized codebook, per-output sums and scales).
      void* memory = allocator->allocate(kan_int8_bytes(parsed.layer), 64);
      if (memory == nullptr) {
        ET_LOG(Error, "LuthamBackend: out of runtime memory for the int8 mode's %zu bytes", kan_int8_bytes(parsed.layer));
        release_codebook(codebook);
        return Error::MemoryAllocationFailed;
      }
      kan_int8_prepare(&parsed.layer, memory);
    }
    LuthamHandle* handle = allocator->allocateInstance<LuthamHandle>();
    if (handle == nullptr) {
      ET_LOG(Error, "LuthamBackend: out of runtime memory for the handle");
      release_codebook(codebook);
      return Error::MemoryAllocationFailed;
    }
    if (copied) {
      processed->Free();
      new (handle) LuthamHandle();
    } else {
      new (handle) LuthamHandle(std::move(*processed));
    }
    handle->layer = parsed.layer;
    handle->codebook = codebook;
    handle->threads = threads;
    return handle;
  }

  Error execute(BackendExecutionContext& context, DelegateHandle* raw, Span<EValue*> args) const override {
    auto* handle = static_cast<LuthamHandle*>(raw);
    if (handle == nullptr || args.size() != 2 || !args[0]->isTensor() || !args[1]->isTensor()) {
      ET_LOG(Error, "LuthamBackend: execute expects one input and one output tensor, got %zu values", args.size());
      return Error::InvalidArgument;
    }
    const KanLayerView& layer = handle->layer;
    const Tensor& x = args[0]->toTensor();
    Tensor& y = args[1]->toTensor();
    if (x.scalar_type() != ScalarType::Float || y.scalar_type() != ScalarType::Float) {
      ET_LOG(Error, "LuthamBackend: input and output must be float32");
      return Error::InvalidArgument;
    }
    if (x.dim() < 1 || x.dim() > static_cast<ssize_t>(kMaxRank) ||
        x.size(x.dim() - 1) != static_cast<ssize_t>(layer.in_features)) {
      ET_LOG(Error, "LuthamBackend: input's last dimension must be %u", layer.in_features);
      return Error::InvalidArgument;
    }
    const size_t batch = static_cast<size_t>(x.numel()) / layer.in_features;
    if (static_cast<size_t>(y.numel()) != batch * layer.out_features) {
      // Dynamic shapes: the output takes the input's leading dims and out_features.
      SizesType sizes[kMaxRank];
      for (ssize_t d = 0; d + 1 < x.dim(); ++d) sizes[d] = x.size(d);
      sizes[x.dim() - 1] = static_cast<SizesType>(layer.out_features);
      const Error err = executorch::runtime::resize_tensor(y, ArrayRef<SizesType>(sizes, x.dim()));
      if (err != Error::Ok) {
        ET_LOG(Error, "LuthamBackend: output holds %zu values, %zu needed, and cannot be resized",
               static_cast<size_t>(y.numel()), batch * layer.out_features);
        return Error::InvalidArgument;
      }
    }
    const auto started = std::chrono::steady_clock::now();
    EventTracer* const tracer = context.event_tracer();
    EventTracerEntry layer_event;
    PhaseEvents phase_events{tracer, {}};
    if (tracer != nullptr) layer_event = executorch::runtime::event_tracer_start_profiling_delegate(tracer, nullptr, kLayerEvent);
    const uint32_t threads = handle->threads != 0 ? handle->threads : default_threads();
    g_last_threads.store(threads, std::memory_order_relaxed);
    TaskRunner runner;
    runner.run = run_on_pool;
    runner.context = const_cast<uint32_t*>(&threads);
    runner.threads = threads;
    if (tracer != nullptr) {
      runner.on_phase = log_phase;
      runner.observer = &phase_events;
    }
    ThreadState& st = thread_state();
    const float* xs = x.const_data_ptr<float>();
    bool hit = false;
    PreparedSlot* slot = find_prepared(st, layer, xs, batch, &hit);
    const size_t prepared_bytes = kan_prepared_bytes(layer, batch), work_bytes = kan_work_bytes(layer, batch, runner.threads);
    void* prepared = slot->buffer.reserve(prepared_bytes);
    void* work = st.work.reserve(work_bytes);
    if (prepared == nullptr || work == nullptr) {
      slot->valid = false;
      ET_LOG(Error, "LuthamBackend: out of memory for %zu bytes of kernel scratch", prepared_bytes + work_bytes);
      if (tracer != nullptr) executorch::runtime::event_tracer_end_profiling_delegate(tracer, layer_event);
      return Error::MemoryAllocationFailed;
    }
    if (!hit) remember(*slot, layer, xs, batch);
    slot->used = ++st.clock;
    kan_forward_prepared(layer, xs, batch, y.mutable_data_ptr<float>(), prepared, hit, work, &runner);
    if (tracer != nullptr) executorch::runtime::event_tracer_end_profiling_delegate(tracer, layer_event);
    const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started);
    g_execute_calls.fetch_add(1, std::memory_order_relaxed);
    g_execute_nanos.fetch_add(static_cast<uint64_t>(nanos.count()), std::memory_order_relaxed);
    return Error::Ok;
  }

  // Process-wide options (executorch::runtime::set_option): num_threads, the default of the
  // delegates whose load gave no runtime spec, from their next execute on.
  Error set_option(BackendOptionContext& /*context*/, const Span<BackendOption>& options) override {
    for (const BackendOption& option : options) {
      if (std::strcmp(option.key, kThreadsKey) != 0) {
        ET_LOG(Error, "LuthamBackend: unknown option '%s' (LuthamBackend takes num_threads)", option.key);
        return Error::InvalidArgument;
      }
      if (threads_value(option, "option") == 0) return Error::InvalidArgument;
    }
    for (const BackendOption& option : options) g_default_threads.store(std::get<int>(option.value));
    return Error::Ok;
  }

  Error get_option(BackendOptionContext& /*context*/, Span<BackendOption>& options) override {
    for (BackendOption& option : options) {
      if (std::strcmp(option.key, kThreadsKey) == 0) option.value = static_cast<int>(default_threads());
      else if (std::strcmp(option.key, kLastThreadsKey) == 0) option.value = static_cast<int>(g_last_threads.load());
      else return Error::NotFound;
    }
    return Error::Ok;
  }

  void destroy(DelegateHandle* raw) const override {
    auto* handle = static_cast<LuthamHandle*>(raw);
    if (handle == nullptr) return;
    release_codebook(handle->codebook);
    // The memory itself belongs to the runtime allocator.
    handle->~LuthamHandle();
  }
};

LuthamBackend& backend_instance() {
  static LuthamBackend instance;
  return instance;
}

const bool registered = [] {
  const Error err = executorch::runtime::register_backend(Backend{"LuthamBackend", &backend_instance()});
  if (err != Error::Ok) ET_LOG(Error, "LuthamBackend: registration failed (error %d)", static_cast<int>(err));
  return err == Error::Ok;
}();

}  // namespace
}  // namespace lutham

// C entry points (the only exported symbols): lets a program force the library to be
// linked and loaded, and lets tests read the codebook cache counters.
extern "C" __attribute__((visibility("default"))) int lutham_backend_registered(void) {
  return lutham::registered ? 1 : 0;
}

extern "C" __attribute__((visibility("default"))) void lutham_codebook_cache_stats(uint64_t out[4]) {
  const lutham::CodebookCacheStats s = lutham::codebook_cache_stats();
  out[0] = s.loads;
  out[1] = s.hits;
  out[2] = s.live;
  out[3] = s.copies;
}

// {execute calls, nanoseconds spent in LuthamBackend::execute} since the library was loaded.
extern "C" __attribute__((visibility("default"))) void lutham_execute_stats(uint64_t out[2]) {
  out[0] = lutham::g_execute_calls.load();
  out[1] = lutham::g_execute_nanos.load();
}

// The kernel variant this CPU runs ("avx2" or "generic"; LUTHAM_ISA=generic forces it).
extern "C" __attribute__((visibility("default"))) const char* lutham_kernel_isa(void) { return lutham::kan_isa(); }
