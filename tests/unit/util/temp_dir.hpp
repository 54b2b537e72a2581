// Test helpers shared by the util and app unit tests: a scratch directory, small files,
// and a liveness check for processes that are not our children.
#pragma once

#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <functional>
#include <sys/wait.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <sys/types.h>
#include <thread>

#include "../test_util.hpp"

namespace bartl::test {

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

/// Redirects our fd 2 into a file for the scope, to read back what was written there.
struct StderrToFile {
    explicit StderrToFile(const std::filesystem::path& file) {
        saved = ::dup(2);
        const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 2);
        ::close(fd);
    }
    ~StderrToFile() {
        ::dup2(saved, 2);
        ::close(saved);
    }
    StderrToFile(const StderrToFile&) = delete;
    StderrToFile& operator=(const StderrToFile&) = delete;
    int saved;
};

/// Runs `fn` in a forked child (for what must not touch this process: dropping privileges,
/// capabilities) and returns the text it returned, or "(child failed)".
inline std::string in_child(const std::function<std::string()>& fn) {
    int p[2];
    if (::pipe(p) != 0)
        return "(no pipe)";
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(p[0]);
        std::string msg;
        try {
            msg = fn();
        } catch (const std::exception& e) {
            msg = std::string("(exception) ") + e.what();
        }
        [[maybe_unused]] auto w = ::write(p[1], msg.data(), msg.size());
        ::_exit(0);
    }
    ::close(p[1]);
    std::string out;
    char buf[1024];
    ssize_t n;
    while ((n = ::read(p[0], buf, sizeof buf)) > 0)
        out.append(buf, std::size_t(n));
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return pid > 0 && WIFEXITED(status) ? out : "(child failed)";
}

}  // namespace bartl::test
