#include "codebook_cache.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "payload.h"

namespace lutham {

using executorch::runtime::FreeableBuffer;

struct CodebookEntry {
  CodebookEntry(std::string k, FreeableBuffer&& b) : key(std::move(k)), buffer(std::move(b)) {}
  std::string key;
  FreeableBuffer buffer;       // what get_data returned (kept alive: it is the data)
  void* copy = nullptr;        // aligned copy when the buffer was not 4-byte aligned
  QuantView view;
  // dim x K float32 copy the kernel reads its coefficient terms from (see dequantize_columns):
  // small (K * dim floats), made once per codebook per process.
  std::vector<float> columns;
  uint64_t refs = 0;
  ~CodebookEntry() {
    buffer.Free();
    std::free(copy);
  }
};

namespace {

struct Cache {
  std::mutex mutex;
  std::unordered_map<std::string, std::unique_ptr<CodebookEntry>> entries;
  CodebookCacheStats stats{};
};

// Never destroyed: delegates may be destroyed during static destruction.
Cache& cache() {
  static Cache* c = new Cache();
  return *c;
}

// The key comes from the payload: escape anything but printable ASCII before it reaches a
// log line (ExecuTorch's Python log hook decodes lines as UTF-8 and aborts on bad bytes).
std::string printable(std::string_view key) {
  std::string out;
  for (unsigned char ch : key.substr(0, 200)) {
    if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
      out += static_cast<char>(ch);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  if (key.size() > 200) out += "...";
  return out;
}

}  // namespace

const CodebookEntry* acquire_codebook(std::string_view key, const executorch::runtime::NamedDataMap* map,
                                      std::string* why) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  const std::string k(key);
  const std::string shown = printable(key);
  auto it = c.entries.find(k);
  if (it != c.entries.end()) {
    ++it->second->refs;
    ++c.stats.hits;
    return it->second.get();
  }
  if (map == nullptr) {
    if (why) *why = "the program has no named data map, so codebook '" + shown + "' cannot be found";
    return nullptr;
  }
  auto data = map->get_data(key);
  ++c.stats.loads;
  if (!data.ok()) {
    if (why) *why = "codebook '" + shown + "' not found in the program's named data (error " +
                    std::to_string(static_cast<int>(data.error())) + ")";
    return nullptr;
  }
  auto entry = std::make_unique<CodebookEntry>(k, std::move(data.get()));
  const void* bytes = entry->buffer.data();
  const size_t size = entry->buffer.size();
  if (reinterpret_cast<uintptr_t>(bytes) % 16 != 0) {
    entry->copy = std::aligned_alloc(16, (size + 15) & ~static_cast<size_t>(15));
    if (entry->copy == nullptr) {
      if (why) *why = "out of memory copying codebook '" + shown + "'";
      return nullptr;
    }
    std::memcpy(entry->copy, bytes, size);
    bytes = entry->copy;
    entry->buffer.Free();
    ++c.stats.copies;
  }
  std::string reason;
  if (!parse_codebook(bytes, size, &entry->view, &reason)) {
    if (why) *why = "codebook '" + shown + "': " + reason;
    return nullptr;
  }
  entry->columns.resize(static_cast<size_t>(entry->view.rows) * entry->view.cols);
  dequantize_columns(entry->view, entry->columns.data());
  entry->refs = 1;
  CodebookEntry* raw = entry.get();
  c.entries.emplace(k, std::move(entry));
  ++c.stats.live;
  return raw;
}

void release_codebook(const CodebookEntry* entry) {
  if (entry == nullptr) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.entries.find(entry->key);
  if (it == c.entries.end() || it->second.get() != entry) return;
  if (--it->second->refs == 0) {
    c.entries.erase(it);
    --c.stats.live;
  }
}

const QuantView& codebook_view(const CodebookEntry* entry) { return entry->view; }

const float* codebook_columns(const CodebookEntry* entry) { return entry->columns.data(); }

CodebookCacheStats codebook_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.stats;
}

}  // namespace lutham
