// The per-instance lock (see lock.hpp). flock(2) rather than fcntl(2) record locks: flock
// locks belong to the open file description, so a second InstanceLock in the same process
// conflicts too, and they are not dropped when some unrelated fd of the file is closed.
#include "util/lock.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <csignal>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "core/error.hpp"
#include "util/fs.hpp"
#include "util/process.hpp"

namespace bartl {
namespace {

/// The PID the holder wrote into the lock file, or "" when it cannot be read (the holder
/// may be between truncate and write).
std::string read_holder(int fd) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return "";
    std::string s(buf, std::size_t(n));
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s.find_first_not_of("0123456789") == std::string::npos ? s : "";
}

/// "PID (comm)" of every process that has the file (`dev`, `ino`) open, found through
/// /proc/PID/fd: who inherited the lock (a hook or the app of a bartld that died).
std::string open_by(dev_t dev, ino_t ino) {
    std::string out;
    std::error_code ec;
    for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string pid = proc.path().filename().string();
        if (pid.find_first_not_of("0123456789") != std::string::npos || pid == std::to_string(::getpid())) continue;
        std::error_code ec2;
        for (const auto& fd : std::filesystem::directory_iterator(proc.path() / "fd", ec2)) {
            struct stat st {};
            if (::stat(fd.path().c_str(), &st) != 0 || st.st_dev != dev || st.st_ino != ino) continue;
            std::string comm;
            if (FILE* f = std::fopen((proc.path() / "comm").c_str(), "r")) {
                char buf[64] = {};
                if (std::fgets(buf, sizeof buf, f)) comm = buf;
                std::fclose(f);
            }
            while (!comm.empty() && comm.back() == '\n') comm.pop_back();
            out += fmt::format("{}PID {} ({})", out.empty() ? "" : ", ", pid, comm.empty() ? "?" : comm);
            break;
        }
    }
    return out;
}

}  // namespace

InstanceLock::InstanceLock(const std::filesystem::path& bartl_dir, const std::string& instance) {
    // Durably: the marker written in it later is only as durable as this directory's entry.
    fs::make_dirs(bartl_dir);
    const auto file = bartl_dir / "lock";
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd_ < 0)
        throw RuntimeError(fmt::format("cannot open lock file {}: {}", file.string(), std::strerror(errno)));

    int rc;
    do
        rc = ::flock(fd_, LOCK_EX | LOCK_NB);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        const int err = errno;
        std::string holder = err == EWOULDBLOCK ? read_holder(fd_) : "";
        // Two starts at once: the holder may not have written its PID yet (it locks, then
        // truncates and writes). Give it a moment so the message can name it.
        for (int i = 0; err == EWOULDBLOCK && holder.empty() && i < 50; ++i) {
            ::usleep(2000);
            holder = read_holder(fd_);
        }
        struct stat lock_st {};
        const bool have_st = ::fstat(fd_, &lock_st) == 0;
        ::close(fd_);
        fd_ = -1;
        if (err != EWOULDBLOCK)
            throw RuntimeError(fmt::format("cannot lock {}: {}", file.string(), std::strerror(err)));
        // Hooks and the app inherit the lock (spawn_process), so a holder PID that is gone
        // means one of them outlived a killed bartld and still works on the state.
        // The file is writable by whatever inherited the lock: parse defensively. EPERM
        // means the process exists.
        const long holder_pid = holder.empty() || holder.size() > 9 ? 0 : std::strtol(holder.c_str(), nullptr, 10);
        const bool holder_alive = holder_pid > 0 && (::kill(static_cast<pid_t>(holder_pid), 0) == 0 || errno == EPERM);
        if (!holder.empty() && !holder_alive) {
            const std::string live = have_st ? open_by(lock_st.st_dev, lock_st.st_ino) : "";
            throw LockedError(fmt::format(
                "instance {} is locked by {}, a hook or app process started by bartld PID {}, which has died; it "
                "is still running on the state, so bartld waits for it to end (systemd stops it with the unit)",
                instance, live.empty() ? "a process" : live, holder));
        }
        throw LockedError(fmt::format(
            "instance {} is locked by {} (another bartld is working on it; when it is serving, use "
            "`bartlctl -i {} backup` instead of `bartld --backup`)",
            instance, holder.empty() ? "another process" : "PID " + holder, instance));
    }

    set_inherited_lock_fd(fd_);
    // The PID is only informational (for the message above); the flock is the lock.
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) < 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
        const int err = errno;
        ::close(fd_);
        fd_ = -1;
        throw RuntimeError(fmt::format("cannot write our PID to {}: {}", file.string(), std::strerror(err)));
    }
}

InstanceLock::~InstanceLock() {
    // Closing the only descriptor releases the flock; the file stays (removing it would race
    // with a process that has it open and is about to lock it).
    if (fd_ >= 0) {
        set_inherited_lock_fd(-1);
        ::close(fd_);
    }
}

}  // namespace bartl
