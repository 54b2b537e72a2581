// How long operations report progress to whoever runs them (the daemon turns these into
// sd_notify STATUS=/EXTEND_TIMEOUT_USEC= and D-Bus properties; tests record them).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/words.hpp"  // format_bytes

namespace bartl {

/// Lifecycle phases (also the D-Bus Phase property values).
enum class Phase { deciding, initializing, restoring, migrating, serving, backing_up, stopping, failed };

/// "deciding", "initializing", ..., "backing-up".
const char* phase_name(Phase p) noexcept;

/// Callbacks an operation calls; any may be empty.
struct Reporter {
    std::function<void(Phase)> phase;               ///< entering a phase
    std::function<void(const std::string&)> status; ///< one-line status ("Restoring ...: 312 MiB of 1.2 GiB")
    std::function<void()> keepalive;                ///< called at least every few seconds during long work
    /// Bytes processed and expected (0 = unknown), at most about once a second (D-Bus BackupProgress).
    std::function<void(std::uint64_t done, std::uint64_t total)> progress;

    void set_phase(Phase p) const { if (phase) phase(p); }
    void set_status(const std::string& s) const { if (status) status(s); }
    void alive() const { if (keepalive) keepalive(); }
};

}  // namespace bartl
