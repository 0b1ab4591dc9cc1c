// Whole-file reads and crash-safe whole-file writes. A write goes to `path.tmp-<pid>` in the same
// folder, is flushed to disk (fsync) and then renamed over `path`, so a reader sees either the
// old file or the complete new one, never a half-written file.
#pragma once

#include <string>
#include <string_view>

namespace attn::io {

// Throws attn::IOError naming the path (and the temporary file) and the errno text on failure;
// the temporary file is removed then.
void write_file_atomic(const std::string& path, std::string_view bytes);

// The bytes of a regular file. attn::IOError naming the path when it is missing, a directory or
// unreadable.
std::string read_file(const std::string& path);

}  // namespace attn::io
