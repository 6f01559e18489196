// lutham_runner's own check of a .pte's program before ExecuTorch loads it.
//
// ExecuTorch 1.5.1's verifier accepts a table whose required-by-use field is absent (a valid
// flatbuffer), and BackendDelegate::Init then dereferences the null `processed` (SIGSEGV; one
// flipped vtable bit did it). So: the flatbuffers verifier over the program, then the fields
// Method::init and Method::execute use without a check: every delegate's id and data, every
// operator's name (a nameless one is logged at init and then called: SIGSEGV), every
// instruction's value, operator and delegate indices, and a memory plan that fits this machine
// (Module allocates it up front: a flipped size bit is a std::bad_alloc). Compiled with hidden visibility (see CMakeLists.txt): these
// inline flatbuffers templates must not interpose on libexecutorch.so's own copies.
#include "program_check.h"

#include <cstring>
#include <unistd.h>
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

uint64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : UINT64_MAX;
}

// The indices one instruction uses, each checked against its table; "" when all are in range.
std::string check_instruction(const executorch_flatbuffer::Instruction* in, uint32_t n_values, uint32_t n_ops,
                              uint32_t n_delegates, uint32_t n_instructions) {
  using namespace executorch_flatbuffer;
  auto value_ok = [&](int32_t v) { return v >= 0 && static_cast<uint32_t>(v) < n_values; };
  auto args_ok = [&](const flatbuffers::Vector<int32_t>* args) {
    if (args == nullptr) return false;
    for (int32_t v : *args)
      if (!value_ok(v)) return false;
    return true;
  };
  switch (in->instr_args_type()) {
    case InstructionArguments_KernelCall: {
      const auto* k = in->instr_args_as_KernelCall();
      if (k == nullptr || k->op_index() < 0 || static_cast<uint32_t>(k->op_index()) >= n_ops) return "a kernel call names no operator of the plan";
      return args_ok(k->args()) ? "" : "a kernel call's arguments are not values of the plan";
    }
    case InstructionArguments_DelegateCall: {
      const auto* d = in->instr_args_as_DelegateCall();
      if (d == nullptr || d->delegate_index() < 0 || static_cast<uint32_t>(d->delegate_index()) >= n_delegates) return "a delegate call names no delegate of the plan";
      return args_ok(d->args()) ? "" : "a delegate call's arguments are not values of the plan";
    }
    case InstructionArguments_MoveCall: {
      const auto* m = in->instr_args_as_MoveCall();
      return m != nullptr && value_ok(m->move_from()) && value_ok(m->move_to()) ? "" : "a move names no value of the plan";
    }
    case InstructionArguments_JumpFalseCall: {
      const auto* j = in->instr_args_as_JumpFalseCall();
      return j != nullptr && value_ok(j->cond_value_index()) && j->destination_instruction() >= 0 &&
                     static_cast<uint32_t>(j->destination_instruction()) < n_instructions
                 ? ""
                 : "a jump names no value or instruction of the plan";
    }
    case InstructionArguments_FreeCall: {
      const auto* f = in->instr_args_as_FreeCall();
      return f != nullptr && value_ok(f->value_index()) ? "" : "a free names no value of the plan";
    }
    default:
      return "an instruction of unknown kind";
  }
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
    const std::string where = " (plan " + std::to_string(p) + ")";
    const uint32_t n_values = plan->values() ? plan->values()->size() : 0;
    const uint32_t n_ops = plan->operators() ? plan->operators()->size() : 0;
    const uint32_t n_delegates = plan->delegates() ? plan->delegates()->size() : 0;
    for (uint32_t o = 0; o < n_ops; ++o) {
      const auto* op = plan->operators()->Get(o);
      if (op->name() == nullptr || op->name()->size() == 0) {
        *why = "operator " + std::to_string(o) + " has no name" + where;
        return false;
      }
    }
    if (plan->chains() != nullptr) {
      for (uint32_t c = 0; c < plan->chains()->size(); ++c) {
        const auto* instructions = plan->chains()->Get(c)->instructions();
        if (instructions == nullptr) continue;
        for (uint32_t i = 0; i < instructions->size(); ++i) {
          const std::string bad =
              check_instruction(instructions->Get(i), n_values, n_ops, n_delegates, instructions->size());
          if (!bad.empty()) {
            *why = "instruction " + std::to_string(i) + " of chain " + std::to_string(c) + ": " + bad + where;
            return false;
          }
        }
      }
    }
    if (const auto* sizes = plan->non_const_buffer_sizes(); sizes != nullptr) {
      // Entry 0 is reserved (ExecuTorch's memory-plan convention); the rest are allocated.
      const uint64_t limit = physical_memory_bytes();
      uint64_t total = 0;
      for (uint32_t b = 1; b < sizes->size(); ++b) {
        const int64_t n = sizes->Get(b);
        if (n < 0 || static_cast<uint64_t>(n) > limit - total) {
          *why = "the memory plan asks for " + (n < 0 ? std::string("a negative size") : std::to_string(n) + " bytes") +
                 " in buffer " + std::to_string(b) + ", more than this machine's " + std::to_string(limit) + where;
          return false;
        }
        total += static_cast<uint64_t>(n);
      }
    }
    for (uint32_t d = 0; d < n_delegates; ++d) {
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
