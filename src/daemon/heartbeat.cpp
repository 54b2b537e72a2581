#include "daemon/heartbeat.hpp"

#include <cstdlib>

#include <fmt/format.h>

#include "util/notify.hpp"

namespace bartl {

Heartbeat::Heartbeat(std::chrono::seconds period) : period_(period) {
    if (std::getenv("NOTIFY_SOCKET")) thread_ = std::thread([this] { run(); });
}

Heartbeat::~Heartbeat() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Heartbeat::run() {
    const auto watchdog = notify::watchdog_interval();
    std::chrono::microseconds tick = period_;
    if (watchdog && *watchdog / 2 < tick) tick = *watchdog / 2;
    auto next_extend = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
        auto now = std::chrono::steady_clock::now();
        if (now >= next_extend) {
            notify::send(fmt::format("EXTEND_TIMEOUT_USEC={}",
                                     std::chrono::duration_cast<std::chrono::microseconds>(period_ * 3).count()));
            next_extend = now + period_;
        }
        if (watchdog) notify::send("WATCHDOG=1");
        cv_.wait_for(lock, tick, [this] { return stop_; });
    }
}

}  // namespace bartl
