// Early writeback while a large tree is written (a restore's staging), so the syncfs(2) that
// must precede the commit finds little left to write: the disk works while we extract.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <thread>

namespace bartl::fs {

/// Runs syncfs(2) of one filesystem on a background thread, at most one at a time, each time
/// at least `every` bytes (as reported by written()) have been written since the last one
/// started. A speed-up, promising nothing durable; but since Linux 5.8 syncfs reports a
/// writeback error once per filesystem and open file, so an error it sees would be hidden
/// from the caller's final sync_filesystem(): finish() rethrows it. Stops and joins on
/// finish() or destruction (waiting for a syncfs in progress).
class BackgroundSync {
public:
    /// `path`: any file or directory on the filesystem; `every`: bytes between two syncs.
    /// If `path` cannot be opened, the object does nothing.
    BackgroundSync(const std::filesystem::path& path, std::uint64_t every);
    ~BackgroundSync();
    BackgroundSync(const BackgroundSync&) = delete;
    BackgroundSync& operator=(const BackgroundSync&) = delete;

    /// Reports that `total` bytes (cumulative) have been written; may start a background sync.
    void written(std::uint64_t total);

    /// syncfs calls started so far (for tests).
    unsigned started() const;

    /// Stops the background thread (waiting for a syncfs in progress), then throws
    /// RuntimeError naming `path` and the errno text if any background syncfs failed.
    void finish();

private:
    void run();
    void stop();
    std::filesystem::path path_;
    int fd_ = -1;
    int error_ = 0;  // errno of the first failed syncfs
    std::uint64_t every_;
    std::uint64_t next_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool requested_ = false;
    bool stop_ = false;
    unsigned started_ = 0;
    std::thread thread_;
};

}  // namespace bartl::fs
