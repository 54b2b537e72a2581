#include "daemon/bus_loop.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/error.hpp"
#include "util/log.hpp"

namespace bartl {

BusLoop::BusLoop(sdbus::IConnection& connection, std::function<void()> each_round, std::string instance)
    : connection_(connection), each_round_(std::move(each_round)), instance_(std::move(instance)) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw RuntimeError(fmt::format("eventfd for the D-Bus thread: {}", std::strerror(errno)));
}

BusLoop::~BusLoop() {
    stop();
    ::close(wake_fd_);
}

void BusLoop::start() { thread_ = std::thread([this] { run(); }); }

void BusLoop::stop() {
    stopping_ = true;
    wake();
    if (thread_.joinable()) thread_.join();
}

void BusLoop::post(std::function<void()> f) {
    {
        std::lock_guard<std::mutex> lock(queue_mutex_);
        queue_.push_back(std::move(f));
    }
    wake();
}

void BusLoop::wake() {
    std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
}

void BusLoop::run() {
    while (!stopping_) {
        try {
            while (connection_.processPendingRequest()) {
            }
            std::uint64_t v;
            (void)!::read(wake_fd_, &v, sizeof v);
            each_round_();
            std::vector<std::function<void()>> jobs;
            {
                std::lock_guard<std::mutex> lock(queue_mutex_);
                jobs.swap(queue_);
            }
            for (auto& j : jobs) j();
            if (!jobs.empty()) continue;  // let sd-bus write what the jobs queued first
            // The read above may have consumed the wake() of stop(), which set stopping_
            // before it: look again before sleeping, or poll() never returns.
            if (stopping_) break;
            auto pd = connection_.getEventLoopPollData();
            pollfd fds[2] = {{pd.fd, pd.events, 0}, {wake_fd_, POLLIN, 0}};
            if (::poll(fds, 2, pd.getPollTimeout()) < 0 && errno != EINTR)
                throw RuntimeError(fmt::format("poll: {}", std::strerror(errno)));
        } catch (const std::exception& e) {
            // The bus went away (dbus-daemon restarted) or broke: the app keeps being
            // served; only the D-Bus interface is gone until the next start.
            log::warn(fmt::format("D-Bus connection lost ({}): {} serves on without its D-Bus interface", e.what(),
                                  instance_));
            return;
        }
    }
}

WorkerPool::~WorkerPool() { join_all(); }

void WorkerPool::join_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& w : workers_)
        if (w->thread.joinable()) w->thread.join();
    workers_.clear();
}

void WorkerPool::run(std::function<void()> work, const std::string& instance) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = workers_.begin(); it != workers_.end();) {
        if ((*it)->done) {
            (*it)->thread.join();
            it = workers_.erase(it);
        } else {
            ++it;
        }
    }
    if (workers_.size() >= limit_)
        throw BusyError(fmt::format("{} requests of instance {} are running; try again later", workers_.size(),
                                    instance));
    auto w = std::make_unique<Worker>();
    auto* raw = w.get();
    raw->thread = std::thread([raw, work = std::move(work)] {
        try {
            work();
        } catch (const std::exception& e) {
            log::warn(fmt::format("D-Bus worker failed: {}", e.what()));
        }
        raw->done = true;
    });
    workers_.push_back(std::move(w));
}

}  // namespace bartl
