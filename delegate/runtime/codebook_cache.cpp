#include "codebook_cache.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "payload.h"
#include "sha256.h"

namespace lutham {

using executorch::runtime::FreeableBuffer;

// One codebook: its bytes (an aligned copy owned by the entry) and the view into them.
struct CodebookEntry {
  explicit CodebookEntry(std::string k) : key(std::move(k)) {}
  CodebookEntry(const CodebookEntry&) = delete;
  CodebookEntry& operator=(const CodebookEntry&) = delete;
  ~CodebookEntry() { std::free(bytes); }
  std::string key;
  void* bytes = nullptr;  // 16-byte aligned copy of the named data
  size_t size = 0;
  QuantView view;         // points into `bytes`
  // dim x K float32 copy the kernel reads its coefficient terms from (see dequantize_columns):
  // small (K * dim floats), made once per codebook per process.
  std::vector<float> columns;
  uint64_t refs = 0;
};

namespace {

constexpr std::string_view kKeyPrefix = "lutham/codebook/sha256-";

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

// This program's bytes for `key`; nothing, with `why` set, when it has none.
std::optional<FreeableBuffer> fetch(std::string_view key, const executorch::runtime::NamedDataMap* map,
                                    const std::string& shown, std::string* why) {
  if (map == nullptr) {
    if (why) *why = "the program has no named data map, so codebook '" + shown +
                    "' cannot be found (a program exported with --external-data needs its .ptd: --data FILE)";
    return std::nullopt;
  }
  auto data = map->get_data(key);
  if (!data.ok()) {
    if (why) *why = "codebook '" + shown + "' not found in the program's named data or its .ptd (error " +
                    std::to_string(static_cast<int>(data.error())) + "; is the .ptd the one exported with this program?)";
    return std::nullopt;
  }
  return std::optional<FreeableBuffer>(std::in_place, std::move(data.get()));
}

// Kept short: ExecuTorch truncates log lines at 256 characters and the key takes 87.
std::string corrupted(const std::string& shown, const std::string& actual_hex) {
  return "codebook '" + shown + "': bytes do not match the key's sha256 (they hash to " + actual_hex.substr(0, 12) +
         "...); the program is corrupted";
}

}  // namespace

const CodebookEntry* acquire_codebook(std::string_view key, const executorch::runtime::NamedDataMap* map,
                                      std::string* why) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  const std::string k(key);
  const std::string shown = printable(key);
  std::optional<FreeableBuffer> data = fetch(key, map, shown, why);
  if (!data) return nullptr;
  const void* bytes = data->data();
  const size_t size = data->size();

  auto it = c.entries.find(k);
  if (it != c.entries.end()) {
    // Share only bytes equal to the entry's: those hashed to the key when it was created.
    CodebookEntry& entry = *it->second;
    if (size != entry.size || (size != 0 && std::memcmp(bytes, entry.bytes, size) != 0)) {
      if (why) *why = corrupted(shown, sha256_hex(bytes, size));
      return nullptr;
    }
    ++entry.refs;
    ++c.stats.hits;
    return &entry;
  }

  if (key.substr(0, kKeyPrefix.size()) != kKeyPrefix || key.size() != kKeyPrefix.size() + 64) {
    if (why) *why = "codebook key '" + shown + "' is not lutham/codebook/sha256-<64 hex digits>, so its bytes cannot be checked";
    return nullptr;
  }
  const std::string actual = sha256_hex(bytes, size);
  if (key.substr(kKeyPrefix.size()) != actual) {
    if (why) *why = corrupted(shown, actual);
    return nullptr;
  }
  auto entry = std::make_unique<CodebookEntry>(k);
  entry->bytes = std::aligned_alloc(16, (size + 15) & ~static_cast<size_t>(15));
  if (entry->bytes == nullptr && size != 0) {
    if (why) *why = "out of memory copying codebook '" + shown + "'";
    return nullptr;
  }
  if (size != 0) std::memcpy(entry->bytes, bytes, size);
  entry->size = size;
  data->Free();
  std::string reason;
  if (!parse_codebook(entry->bytes, entry->size, &entry->view, &reason)) {
    if (why) *why = "codebook '" + shown + "': " + reason;
    return nullptr;
  }
  entry->columns.resize(static_cast<size_t>(entry->view.rows) * entry->view.cols);
  dequantize_columns(entry->view, entry->columns.data());
  entry->refs = 1;
  CodebookEntry* raw = entry.get();
  c.entries.emplace(k, std::move(entry));
  ++c.stats.loads;
  ++c.stats.live;
  ++c.stats.copies;
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
