// The machinery under the D-Bus adaptor (daemon/bus.cpp): the one thread that may touch
// the sd-bus connection, the queue other threads hand closures to, and a bounded pool of
// worker threads for calls that do store I/O.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <sdbus-c++/sdbus-c++.h>

namespace bartl {

/// The D-Bus thread: processes requests, then runs queued closures, then sleeps in poll(2)
/// on the connection and a wake eventfd. sd-bus connections are not thread-safe, so every
/// sd-bus call happens here; other threads only post() and wake().
class BusLoop {
public:
    /// `connection` must outlive the loop. `each_round` runs on the loop thread after the
    /// requests of a round (PropertiesChanged from the newest status). Throws RuntimeError
    /// when eventfd(2) fails.
    BusLoop(sdbus::IConnection& connection, std::function<void()> each_round, std::string instance);
    /// Stops and joins the thread.
    ~BusLoop();
    BusLoop(const BusLoop&) = delete;
    BusLoop& operator=(const BusLoop&) = delete;

    /// Starts the thread.
    void start();
    /// Stops the thread (idempotent); queued closures that have not run are dropped.
    void stop();
    /// Runs `f` on the loop thread soon. Any thread.
    void post(std::function<void()> f);
    /// Makes the loop look again (the status changed). Any thread; never blocks.
    void wake();

private:
    void run();

    sdbus::IConnection& connection_;
    std::function<void()> each_round_;
    std::string instance_;
    int wake_fd_ = -1;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
    std::mutex queue_mutex_;
    std::vector<std::function<void()>> queue_;
};

/// At most `limit` threads for calls that do store I/O (ListBackups, Verify, Plan): more
/// callers get BusyError rather than more threads.
class WorkerPool {
public:
    explicit WorkerPool(std::size_t limit) : limit_(limit) {}
    /// Joins every worker (they watch the cancellation token their work was given).
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    /// Starts `work` on a new thread, joining finished ones first. An exception escaping
    /// `work` is logged. Throws BusyError when `limit` workers are running.
    void run(std::function<void()> work, const std::string& instance);
    /// Joins every worker now.
    void join_all();

private:
    struct Worker {
        std::thread thread;
        std::atomic<bool> done{false};
    };
    std::size_t limit_;
    std::mutex mutex_;
    std::list<std::unique_ptr<Worker>> workers_;
};

}  // namespace bartl
