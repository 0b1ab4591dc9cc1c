// The CLI tests run the built `attn` through the shell: its path is quoted (a checkout under a
// directory with a space in its name made every such test fail with "sh: 1: ...: not found").
#pragma once

#include <string>

namespace attn::test {

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The `attn` binary of this build, quoted for a shell command line.
inline std::string attn_command() { return shell_quote(std::string(ATTN_BINARY_DIR) + "/attn"); }

}  // namespace attn::test
