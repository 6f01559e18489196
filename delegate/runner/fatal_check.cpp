// lutham_runner's answer to ExecuTorch's ET_CHECK aborts.
//
// Some checks inside ExecuTorch 1.5.1 end the process instead of returning an Error: an EValue
// of the wrong type handed to a kernel (`toInt()` on a tensor, `toTensorList()` on an int), as a
// flipped byte in a program's instruction arguments makes it. The verifier and our own program
// check cannot see those without every operator's schema, so the runner replaces the platform
// layer's two weak hooks (runtime/platform/platform.h): the log hook remembers the last fatal
// message, and the abort hook prints it as the runner's one error line and exits with status 1,
// as delegate/README.md promises for a corrupted program. Both keep the default format and
// behaviour otherwise, except that the log hook drops the info lines of ExecuTorch's cpuinfo
// probing (six lines at every start, about /sys files a VM lacks: never about the program). Default visibility on purpose: these must interpose on libexecutorch.so's
// weak definitions (the rest of the runner is compiled hidden).
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>

#include <unistd.h>

#include <executorch/runtime/platform/platform.h>

namespace {

// The last fatal (level F) log message: the failed check that precedes an abort.
char last_fatal[512] = "";

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void et_pal_emit_log_message(
    et_timestamp_t timestamp, et_pal_log_level_t level, const char* filename, const char* /*function*/,
    size_t line, const char* message, size_t length) {
  if ((level == kInfo || level == kDebug) && std::strstr(filename, "cpuinfo_utils") != nullptr) return;
  const et_tick_ratio_t ratio = et_pal_ticks_to_ns_multiplier();
  const uint64_t us = static_cast<uint64_t>(timestamp) * ratio.numerator / ratio.denominator / 1000;
  const uint64_t s = us / 1000000;
  std::fprintf(stderr, "%c %02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%06" PRIu64 " executorch:%s:%zu] %.*s\n",
               static_cast<char>(level), s / 3600, (s / 60) % 60, s % 60, us % 1000000, filename, line,
               static_cast<int>(length), message);
  std::fflush(stderr);
  if (level == kFatal) {
    const size_t n = length < sizeof last_fatal - 1 ? length : sizeof last_fatal - 1;
    std::memcpy(last_fatal, message, n);
    last_fatal[n] = '\0';
  }
}

__attribute__((visibility("default"))) ET_NORETURN void et_pal_abort(void) {
  std::fprintf(stderr, "lutham_runner: ExecuTorch stopped on a failed check (%s): the program is corrupt or uses what this runtime does not support\n",
               last_fatal[0] ? last_fatal : "no message");
  std::fflush(stderr);
  _exit(1);
}

}  // extern "C"
