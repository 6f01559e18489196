// SHA-256 (FIPS 180-4), small and dependency-free: the codebook cache checks codebook bytes
// against their content-hash key (lutham/codebook/sha256-<hex>) with it. Not constant-time;
// nothing secret is hashed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace lutham {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest sha256(const void* data, size_t size);

// Lower-case hex, as Python's hashlib.sha256(...).hexdigest().
std::string sha256_hex(const void* data, size_t size);

}  // namespace lutham
