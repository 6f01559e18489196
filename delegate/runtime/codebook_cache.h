// Process-wide cache of codebooks, keyed by their named-data key.
//
// The first delegate that needs a key fetches it with NamedDataMap::get_data, validates it
// and keeps the FreeableBuffer (zero-copy when the program was mmap-loaded: the buffer is
// the mapping). Every later delegate with the same key, in this program or another one,
// shares that entry. Entries are reference counted and released with the last delegate.
// Keys are content hashes (see py_bridge/lutham/serialization/payload.py codebook_key), so
// equal keys mean equal bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <executorch/runtime/core/named_data_map.h>

#include "kan_kernel.h"

namespace lutham {

struct CodebookEntry;

// Returns the shared entry for `key` (refcount + 1) or nullptr with `why` set.
const CodebookEntry* acquire_codebook(std::string_view key, const executorch::runtime::NamedDataMap* map,
                                      std::string* why);
// Drops one reference; the last one frees the buffer.
void release_codebook(const CodebookEntry* entry);
// The validated K x dim view of an entry.
const QuantView& codebook_view(const CodebookEntry* entry);
// The entry's codebook as dim x K float32 (kan_kernel.h dequantize_columns).
const float* codebook_columns(const CodebookEntry* entry);

struct CodebookCacheStats {
  uint64_t loads;    // get_data calls made by the cache since the process started
  uint64_t hits;     // acquisitions served from the cache
  uint64_t live;     // entries alive now
  uint64_t copies;   // loads that had to be copied (misaligned buffer)
};
CodebookCacheStats codebook_cache_stats();

}  // namespace lutham
