// Helpers shared by every unit test: a scratch directory (with private tmpfs mounts for
// full/read-only filesystem cases) and small-file I/O.
#pragma once

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace bartl::test {

namespace stdfs = std::filesystem;

/// True in an AddressSanitizer build (meson -Db_sanitize=address...): its shadow memory and
/// quarantine make RSS figures meaningless, so memory-bound checks are skipped with a WARN.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

/// A fresh directory under $TMPDIR (or /tmp), removed at scope end (after unmounting
/// anything a test mounted inside it).
class TempDir {
public:
    TempDir() {
        const char* base = std::getenv("TMPDIR");
        std::string templ = std::string(base && *base ? base : "/tmp") + "/bartl-test-XXXXXX";
        if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed for " + templ);
        path_ = templ;
    }
    ~TempDir() {
        for (const auto& m : mounts_) ::umount2(m.c_str(), MNT_DETACH);
        std::error_code ec;
        stdfs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const stdfs::path& path() const { return path_; }
    stdfs::path operator/(const std::string& name) const { return path_ / name; }

    /// Mounts a tmpfs at `dir` (created) with `options` ("ro", "size=64k"), in a mount
    /// namespace private to this test process. False when that is not permitted.
    bool mount_tmpfs(const stdfs::path& dir, const std::string& options) {
        if (!private_mounts()) return false;
        stdfs::create_directories(dir);
        unsigned long flags = 0;
        std::string data = options;
        if (options == "ro") {
            flags = MS_RDONLY;
            data.clear();
        }
        if (::mount("tmpfs", dir.c_str(), "tmpfs", flags, data.c_str()) != 0) return false;
        mounts_.push_back(dir);
        return true;
    }

private:
    /// Enters a new mount namespace once, so test mounts never show up on the host.
    static bool private_mounts() {
        static int state = -1;
        if (state < 0)
            state = ::unshare(CLONE_NEWNS) == 0 && ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
        return state == 1;
    }

    stdfs::path path_;
    std::vector<stdfs::path> mounts_;
};

/// Writes `content` to `path`, with mode `mode` (0755 for scripts).
inline void write_file(const stdfs::path& path, const std::string& content, unsigned mode = 0644) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    ::chmod(path.c_str(), mode);
}

/// Whole file content, "" when it does not exist.
inline std::string read_file(const stdfs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

/// Every name in `dir` (not recursive), sorted, including hidden ones.
inline std::vector<std::string> names_in(const stdfs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : stdfs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace bartl::test
