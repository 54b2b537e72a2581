// Running hooks and helper commands as child processes (posix_spawn/fork+exec).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bartl {

/// Result of a finished command.
struct CommandResult {
    int exit_status = -1;   ///< exit code when exited normally, else -1
    int term_signal = 0;    ///< signal number when killed by a signal, else 0
    bool timed_out = false; ///< killed by us after the timeout
    std::string out;        ///< captured stdout (when requested), capped at max_output bytes
    std::string err;        ///< captured stderr, capped at max_output bytes (the tail is kept)

    bool ok() const noexcept { return exit_status == 0 && !timed_out; }
    /// "exited with status 3", "killed by signal 9 (SIGKILL)", "timed out after 10s".
    std::string describe() const;
};

/// How to run a command.
struct CommandSpec {
    std::vector<std::string> argv;              ///< argv[0] is a path or a name looked up in PATH
    std::map<std::string, std::string> env;     ///< added to (overriding) the inherited environment
    std::optional<std::string> cwd;
    std::chrono::milliseconds timeout{0};       ///< 0 = no timeout; on expiry SIGTERM, then SIGKILL after 5 s
    bool capture_stdout = false;                ///< else stdout is inherited
    std::size_t max_output = 64 * 1024;         ///< bytes kept of each captured stream
};

/// Runs a command to completion. stderr is always captured (and also copied to our stderr
/// line by line when `echo_stderr`). Throws RuntimeError when it cannot be started
/// (naming argv[0] and errno text); a non-zero exit is reported in the result, not thrown.
CommandResult run_command(const CommandSpec& spec, bool echo_stderr = true);

}  // namespace bartl
