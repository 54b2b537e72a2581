// Keeps systemd from killing a long start (EXTEND_TIMEOUT_USEC=) and feeds the watchdog
// (WATCHDOG=1) from a background thread while the lifecycle loop works (sd_notify(3)).
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace bartl {

/// While alive, sends EXTEND_TIMEOUT_USEC=<3 × period> every `period`, and WATCHDOG=1 every half
/// watchdog interval when systemd asked for one. No-op without $NOTIFY_SOCKET.
class Heartbeat {
public:
    explicit Heartbeat(std::chrono::seconds period = std::chrono::seconds(10));
    ~Heartbeat();
    Heartbeat(const Heartbeat&) = delete;
    Heartbeat& operator=(const Heartbeat&) = delete;

private:
    void run();
    std::chrono::seconds period_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace bartl
