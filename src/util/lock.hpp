// The per-instance exclusive lock (bartl(7): one process per instance).
#pragma once

#include <filesystem>
#include <string>

namespace bartl {

/// Holds flock(LOCK_EX) on "<bartl_dir>/lock" with our PID written in it, for its lifetime.
/// The kernel releases it when the process dies, so a killed holder never blocks the next start.
class InstanceLock {
public:
    /// Takes the lock without waiting. Throws LockedError "instance NAME is locked by PID N"
    /// when another process holds it; RuntimeError when the file cannot be opened.
    InstanceLock(const std::filesystem::path& bartl_dir, const std::string& instance);
    ~InstanceLock();
    InstanceLock(const InstanceLock&) = delete;
    InstanceLock& operator=(const InstanceLock&) = delete;

private:
    int fd_ = -1;
};

}  // namespace bartl
