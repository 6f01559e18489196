// The last-level cache size that sysfs reports (the largest "Unified"/"Data" cache of cpu0),
// for sizing bandwidth and eviction buffers. 0 when sysfs has none (then callers use floors).
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace lutham {
namespace bench {

inline uint64_t llc_bytes() {
  uint64_t best = 0;
  for (int i = 0; i < 16; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::FILE* f = std::fopen((dir + "size").c_str(), "r");
    if (f == nullptr) continue;
    char text[64] = {0};
    const bool ok = std::fgets(text, sizeof text, f) != nullptr;
    std::fclose(f);
    if (!ok) continue;
    char* end = nullptr;
    uint64_t v = std::strtoull(text, &end, 10);
    if (end != nullptr && (*end == 'K' || *end == 'k')) v *= 1024;
    else if (end != nullptr && (*end == 'M' || *end == 'm')) v *= 1024 * 1024;
    if (v > best) best = v;
  }
  return best;
}

}  // namespace bench
}  // namespace lutham
