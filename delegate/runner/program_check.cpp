// lutham_runner's own check of a .pte's program before ExecuTorch loads it.
//
// ExecuTorch 1.5.1's verifier accepts a table whose required-by-use field is absent (a valid
// flatbuffer), and BackendDelegate::Init then dereferences the null `processed` (SIGSEGV; one
// flipped vtable bit did it). So: the flatbuffers verifier over the program, then the fields
// Method::init uses without a check. Compiled with hidden visibility (see CMakeLists.txt): these
// inline flatbuffers templates must not interpose on libexecutorch.so's own copies.
#include "program_check.h"

#include <cstring>
#include <fstream>
#include <vector>

#include "generated/program_generated.h"

namespace lutham {
namespace {

constexpr uint64_t kMaxProgramBytes = 1ull << 30;

uint64_t u64_at(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

bool check_program_file(const std::string& path, std::string* why) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *why = "cannot open " + path;
    return false;
  }
  f.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(f.tellg());
  f.seekg(0);
  unsigned char head[40] = {};
  f.read(reinterpret_cast<char*>(head), sizeof head);
  const uint64_t got = static_cast<uint64_t>(f.gcount());
  if (got < 8 || std::memcmp(head + 4, "ET12", 4) != 0) {
    *why = path + " is not a .pte file (no ET12 identifier)";
    return false;
  }
  // With an extended header ("eh00"), the program is the first program_size bytes.
  uint64_t program_size = file_size;
  if (got >= 24 && std::memcmp(head + 8, "eh00", 4) == 0) program_size = u64_at(head + 16);
  if (program_size > file_size || program_size > kMaxProgramBytes) {
    *why = "the program size " + std::to_string(program_size) + " in the header does not fit the file";
    return false;
  }
  std::vector<uint8_t> program(program_size);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(program.data()), static_cast<std::streamsize>(program_size));
  if (static_cast<uint64_t>(f.gcount()) != program_size) {
    *why = "cannot read the program of " + path;
    return false;
  }
  flatbuffers::Verifier verifier(program.data(), program.size(), /*max_depth=*/64, /*max_tables=*/100000000);
  if (!executorch_flatbuffer::VerifyProgramBuffer(verifier)) {
    *why = "the program flatbuffer is corrupt (the flatbuffers verifier refuses it)";
    return false;
  }
  const auto* prog = executorch_flatbuffer::GetProgram(program.data());
  if (prog->execution_plan() == nullptr) {
    *why = "the program has no execution plans";
    return false;
  }
  for (uint32_t p = 0; p < prog->execution_plan()->size(); ++p) {
    const auto* plan = prog->execution_plan()->Get(p);
    if (plan->delegates() == nullptr) continue;
    for (uint32_t d = 0; d < plan->delegates()->size(); ++d) {
      const auto* del = plan->delegates()->Get(d);
      if (del->id() == nullptr || del->processed() == nullptr) {
        *why = "delegate " + std::to_string(d) + " of plan " + std::to_string(p) + " has no " +
               (del->id() == nullptr ? "backend id" : "processed data");
        return false;
      }
    }
  }
  return true;
}

}  // namespace lutham
