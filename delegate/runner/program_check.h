// lutham_runner's check of a .pte's program before ExecuTorch loads it (program_check.cpp).
#pragma once

#include <string>

namespace lutham {

// False, with `why` set to one line, when the program would crash ExecuTorch 1.5.1's loader.
bool check_program_file(const std::string& path, std::string* why);

}  // namespace lutham
