#include "util/writeback.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace bartl::fs {

BackgroundSync::BackgroundSync(const std::filesystem::path& path, std::uint64_t every)
    : every_(every == 0 ? 1 : every), next_(every_) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ >= 0) thread_ = std::thread([this] { run(); });
}

BackgroundSync::~BackgroundSync() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
}

void BackgroundSync::written(std::uint64_t total) {
    if (fd_ < 0 || total < next_) return;
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

void BackgroundSync::run() {
    std::unique_lock lock(mu_);
    for (;;) {
        cv_.wait(lock, [&] { return requested_ || stop_; });
        if (stop_) return;
        requested_ = false;
        ++started_;
        lock.unlock();
        (void)::syncfs(fd_);
        lock.lock();
    }
}

}  // namespace bartl::fs
