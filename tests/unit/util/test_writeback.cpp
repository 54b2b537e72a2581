// BackgroundSync: background syncfs(2) every N bytes written, on a real filesystem.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "temp_dir.hpp"
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
