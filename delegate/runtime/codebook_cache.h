// Process-wide cache of codebooks, keyed by their named-data key.
//
// Keys are content hashes, `lutham/codebook/sha256-<hex of the codebook bytes>` (see
// py_bridge/lutham/lower/serialization/payload.py codebook_key). The first delegate that needs a
// key fetches it with NamedDataMap::get_data, checks the bytes' SHA-256 against the key,
// validates them and keeps its own aligned copy: the entry never points into a program's
// buffer, which may be freed while another program still shares the entry (a program
// loaded from bytes does not own them; ExecuTorch's BufferDataLoader hands out pointers
// into the caller's buffer). Every later delegate with the same key, in this program or
// another one, shares that entry only after its own program's bytes for the key compared
// equal to the entry's, so a corrupted program never borrows a good entry and a good one
// never borrows a corrupted entry (corrupted bytes never become an entry). Entries are
// reference counted and released with the last delegate.
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
// Drops one reference; the last one frees the entry.
void release_codebook(const CodebookEntry* entry);
// The validated K x dim view of an entry.
const QuantView& codebook_view(const CodebookEntry* entry);
// The entry's codebook as dim x K float32 (kan_kernel.h dequantize_columns).
const float* codebook_columns(const CodebookEntry* entry);

struct CodebookCacheStats {
  uint64_t loads;    // entries created: codebooks fetched, hash-checked, validated and copied
  uint64_t hits;     // acquisitions served by a live entry (after comparing the program's bytes)
  uint64_t live;     // entries alive now
  uint64_t copies;   // codebooks copied into the cache: one per entry created (entries own their bytes)
};
CodebookCacheStats codebook_cache_stats();

}  // namespace lutham
