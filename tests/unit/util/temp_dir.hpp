// Test helpers shared by the util and app unit tests: a scratch directory, small files,
// and a liveness check for processes that are not our children.
#pragma once

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <sys/types.h>
#include <thread>

namespace bartl::test {

/// A fresh directory under $TMPDIR (or /tmp), removed with everything in it at scope end.
class TempDir {
public:
    TempDir() {
        const char* base = std::getenv("TMPDIR");
        std::string templ = std::string(base && *base ? base : "/tmp") + "/bartl-test-XXXXXX";
        if (!::mkdtemp(templ.data()))
            throw std::runtime_error("mkdtemp failed for " + templ);
        path_ = templ;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

/// Writes `content` to `path`, with mode `mode` (0755 for scripts).
inline void write_file(const std::filesystem::path& path, const std::string& content, unsigned mode = 0644) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    ::chmod(path.c_str(), mode);
}

/// Whole file content, "" when it does not exist.
inline std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

/// True while `pid` runs. A killed orphan may linger as a zombie until PID 1 reaps it, so
/// zombies count as gone (kill(pid, 0) alone would still succeed on them).
inline bool process_running(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat))
        return false;
    const auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z' && stat[close + 2] != 'X';
}

/// Waits up to 2 s for `pid` to stop running: SIGKILL is delivered asynchronously, so a
/// process just killed may still be scheduled for a moment. True when it is gone.
inline bool gone_soon(pid_t pid) {
    for (int i = 0; i < 200; ++i) {
        if (!process_running(pid))
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

}  // namespace bartl::test
