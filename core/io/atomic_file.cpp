#include "core/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "core/error.h"

namespace attn::io {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

// Closes the descriptor on scope exit unless released.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view bytes) {
  ATTN_CHECK(!path.empty(), IOError, "write_file_atomic: empty path");
  // A temporary of this call alone (two threads writing one path shared "<path>.tmp-<pid>" and
  // mixed their bytes), created exclusively, never through a planted symlink.
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = fmt::format("{}.tmp-{}-{}", path, ::getpid(), counter.fetch_add(1));
  auto fail = [&](const char* what, int err) {
    ::unlink(tmp.c_str());
    throw IOError(fmt::format("cannot write '{}': {} '{}' failed: {}", path, what, tmp, errno_text(err)));
  };

  Fd f;
  f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (f.fd < 0) {
    const int err = errno;
    throw IOError(fmt::format("cannot write '{}': cannot create '{}': {}", path, tmp, errno_text(err)));
  }
  // A file replaced keeps its permissions (a private 0600 file became 0644 with the umask).
  struct stat old_file {};
  if (::stat(path.c_str(), &old_file) == 0 && S_ISREG(old_file.st_mode) && ::fchmod(f.fd, old_file.st_mode & 07777) != 0)
    fail("fchmod of", errno);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(f.fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write to", errno);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(f.fd) != 0) fail("fsync of", errno);
  if (::close(f.release()) != 0) fail("close of", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw IOError(fmt::format("cannot write '{}': rename from '{}' failed: {}", path, tmp, errno_text(err)));
  }
  // Make the rename itself durable; a failure here leaves a complete file, so it is not an error.
  Fd dir;
  dir.fd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir.fd >= 0) (void)::fsync(dir.fd);
}

std::string read_file(const std::string& path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) {
    const int err = errno;
    throw IOError(fmt::format("cannot read '{}': {}", path, errno_text(err)));
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) {
    const int err = errno;
    throw IOError(fmt::format("cannot read '{}': {}", path, errno_text(err)));
  }
  ATTN_CHECK(!S_ISDIR(st.st_mode), IOError, "cannot read '{}': it is a directory", path);
  std::string out;
  if (S_ISREG(st.st_mode)) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      throw IOError(fmt::format("cannot read '{}': {}", path, errno_text(err)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace attn::io
