// CRC-32 as zlib computes it (polynomial 0xEDB88320, reflected, init and final xor ~0):
// the payload checksum (schema/lutham.fbs KanLayer.checksum) is zlib.crc32 on the writer side.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lutham {

// Continues a CRC: crc32(crc32(0, a), b) == crc32 of a followed by b, as zlib.crc32(b, crc).
uint32_t crc32(uint32_t crc, const void* data, size_t size);

}  // namespace lutham
