// BackgroundSync: background syncfs(2) every N bytes written, on a real filesystem.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "temp_dir.hpp"
#include "util/fs.hpp"
#include "util/writeback.hpp"

using namespace bartl;

namespace {

/// Waits up to 5 s for `n` syncs to have started.
bool wait_started(const fs::BackgroundSync& s, unsigned n) {
    for (int i = 0; i < 500 && s.started() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return s.started() >= n;
}

}  // namespace

TEST_CASE("a background sync starts once every N bytes, never for less", "[writeback]") {
    test::TempDir tmp;
    fs::BackgroundSync s(tmp.path(), 1000);
    s.written(999);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(s.started() == 0);
    s.written(1000);
    CHECK(wait_started(s, 1));
    s.written(1500);  // less than 1000 bytes after the last trigger
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(s.started() == 1);
    s.written(2000);
    CHECK(wait_started(s, 2));
}

TEST_CASE("a background sync on a path that cannot be opened does nothing", "[writeback]") {
    test::TempDir tmp;
    fs::BackgroundSync s(tmp.path() / "missing", 1);
    s.written(100);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(s.started() == 0);
}

TEST_CASE("finish() stops the background syncs; later writes start none", "[writeback]") {
    test::TempDir tmp;
    fs::BackgroundSync s(tmp.path(), 10);
    s.written(10);
    CHECK(wait_started(s, 1));
    CHECK_NOTHROW(s.finish());  // no syncfs failed on this healthy filesystem
    const unsigned n = s.started();
    s.written(1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(s.started() == n);
}

TEST_CASE("sync_tree fsyncs a small tree file by file and falls back to syncfs past max_entries", "[writeback]") {
    test::TempDir tmp;
    const auto root = tmp.path() / "tree";
    std::filesystem::create_directories(root / "a" / "b");
    for (int i = 0; i < 5; ++i) std::ofstream(root / "a" / ("f" + std::to_string(i))) << "data " << i;
    std::filesystem::create_symlink("/nonexistent/target", root / "a" / "dangling");  // not followed
    REQUIRE(::mkfifo((root / "a" / "fifo").c_str(), 0600) == 0);                      // not opened (would block)
    // root, a, a/b and five files: eight entries.
    CHECK_FALSE(fs::sync_tree(root, 8));
    CHECK(fs::sync_tree(root, 7));
    CHECK_FALSE(fs::sync_tree(root / "a" / "b", 1));  // only the root itself
    CHECK(fs::sync_tree(root / "a" / "b", 0));
}

TEST_CASE("sync_tree of a missing tree throws naming it", "[writeback]") {
    test::TempDir tmp;
    CHECK_THROWS_WITH(fs::sync_tree(tmp.path() / "missing"), Catch::Contains("missing"));
}

TEST_CASE("sync_tree of a tree whose files come and go (a hook's leftover process) does not throw",
          "[writeback]") {
    test::TempDir tmp;
    const auto root = tmp.path() / "tree";
    std::filesystem::create_directories(root);
    std::atomic<bool> stop{false};
    std::thread churn([&] {
        for (unsigned i = 0; !stop; ++i) {
            const auto f = root / ("tmp" + std::to_string(i % 64));
            std::ofstream(f) << "x";
            std::filesystem::remove(f);
        }
    });
    unsigned failures = 0;
    std::string first;
    for (int i = 0; i < 300; ++i) {
        try {
            (void)fs::sync_tree(root);
        } catch (const std::exception& e) {
            if (!failures++) first = e.what();
        }
    }
    stop = true;
    churn.join();
    INFO(first);
    CHECK(failures == 0);
}
