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

}  // namespace bartl::test
