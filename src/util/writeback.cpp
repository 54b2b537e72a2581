#include "util/writeback.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl::fs {

BackgroundSync::BackgroundSync(const std::filesystem::path& path, std::uint64_t every)
    : path_(path), every_(every == 0 ? 1 : every), next_(every_) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return;
    try {
        thread_ = std::thread([this] { run(); });
    } catch (...) {
        ::close(fd_);
        fd_ = -1;
    }
}

BackgroundSync::~BackgroundSync() {
    stop();
    if (fd_ >= 0) ::close(fd_);
}

void BackgroundSync::stop() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
}

void BackgroundSync::written(std::uint64_t total) {
    if (fd_ < 0 || !thread_.joinable() || total < next_) return;
    next_ = total + every_;
    {
        std::lock_guard lock(mu_);
        requested_ = true;  // a sync already running absorbs this request when it ends
    }
    cv_.notify_one();
}

unsigned BackgroundSync::started() const {
    std::lock_guard lock(mu_);
    return started_;
}

void BackgroundSync::finish() {
    stop();
    std::lock_guard lock(mu_);
    if (error_ != 0)
        throw RuntimeError(fmt::format("cannot sync the filesystem of {}: {}", path_.string(), std::strerror(error_)));
}

void BackgroundSync::run() {
    std::unique_lock lock(mu_);
    for (;;) {
        cv_.wait(lock, [&] { return requested_ || stop_; });
        if (stop_) return;
        requested_ = false;
        ++started_;
        lock.unlock();
        const int rc = ::syncfs(fd_);
        const int err = errno;
        lock.lock();
        if (rc != 0 && error_ == 0) error_ = err;
    }
}

}  // namespace bartl::fs
