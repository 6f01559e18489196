// Validation of LUTHAM payloads ("LTHM") and codebooks ("LTCB") against schema/lutham.fbs.
//
// Every function here checks the bytes completely before anything reads them through the
// generated accessors: identifier, flatbuffers Verifier, schema version, every length and
// count, the checksum, every index < K, scales and knots finite. On failure it writes a one-line reason
// into `why` and returns false; it never reads out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kan_kernel.h"

namespace lutham {

// Versions this runtime reads: 2, and 3 (KanLayer.compute, EdgePanels.group: the int8 mode).
constexpr uint32_t kSchemaVersion = 2;
constexpr uint32_t kSchemaVersionInt8 = 3;

struct ParsedPayload {
  KanLayerView layer;  // codebook field left empty: it comes from the named data
  std::string_view codebook_key;
};

// Validates a payload buffer (must be 4-byte aligned) and fills `out`. verify_checksum=false
// skips only the CRC (the fuzzer uses it to get past mutated data; the runtime never does).
bool parse_payload(const void* data, size_t size, ParsedPayload* out, std::string* why, bool verify_checksum = true);

// Validates a codebook buffer (must be 4-byte aligned) and fills `out` (K x dim).
bool parse_codebook(const void* data, size_t size, QuantView* out, std::string* why);

// Checks that every index of the layer is < K (K = layer.codebook_size).
bool check_indices(const KanLayerView& layer, std::string* why);

}  // namespace lutham
