// LastRunScan: `bartlctl status` reports the last bartld run's decision and error, never an
// earlier run's.
#include <catch2/catch.hpp>

#include <vector>

#include "core/last_run.hpp"

using namespace bartl;

namespace {

RunEntry entry(std::string run, std::string time, int priority, std::string message,
               std::optional<std::string> decision = std::nullopt, std::string identifier = "bartld") {
    return RunEntry{std::move(run), std::move(time), priority, std::move(identifier), std::move(decision),
                    std::move(message)};
}

/// Feeds `newest_first` until the scan says stop; returns the result and how many it took.
std::pair<LastRun, std::size_t> scan(const std::vector<RunEntry>& newest_first) {
    LastRunScan s;
    std::size_t taken = 0;
    for (const auto& e : newest_first) {
        ++taken;
        if (!s.add(e)) break;
    }
    return {s.result(), taken};
}

}  // namespace

TEST_CASE("last run: a fixed config typo's error is an earlier run's, not shown", "[core]") {
    // Newest first: the run after the fix served and was stopped; the one before exited 78.
    const auto [r, taken] = scan({
        entry("inv-2", "2026-12-01T22:10:05Z", 5, "stopped: SIGTERM received"),
        entry("inv-2", "2026-12-01T22:09:01Z", 6, "app notes.py ready (PID 42)"),
        entry("inv-2", "2026-12-01T22:09:00Z", 5, "decision: serve", "serve"),
        entry("inv-1", "2026-12-01T22:08:00Z", 3, "/etc/bartl/notes.toml:3:7: unknown key \"exce\""),
        entry("inv-1", "2026-12-01T22:07:00Z", 5, "decision: init", "init"),
    });
    CHECK(r.run == "inv-2");
    CHECK(r.decision == "serve");
    CHECK(r.decision_time == "2026-12-01T22:09:00Z");
    CHECK_FALSE(r.error.has_value());
    CHECK_FALSE(r.error_time.has_value());
    CHECK(taken == 4);  // stopped at the first entry of the earlier run
}

TEST_CASE("last run: its own failure is shown, without an earlier run's decision", "[core]") {
    const auto [r, taken] = scan({
        entry("inv-3", "2026-12-01T22:12:00Z", 3, "/etc/bartl/notes.toml:3:7: unknown key \"exce\""),
        entry("inv-2", "2026-12-01T22:09:00Z", 5, "decision: serve", "serve"),
    });
    CHECK(r.run == "inv-3");
    CHECK(r.error == "/etc/bartl/notes.toml:3:7: unknown key \"exce\"");
    CHECK(r.error_time == "2026-12-01T22:12:00Z");
    CHECK_FALSE(r.decision.has_value());
    CHECK(taken == 2);
}

TEST_CASE("last run: the newest error and decision of the run; the app's err lines are not bartld's", "[core]") {
    const auto [r, taken] = scan({
        entry("PID 77", "t5", 3, "app notes.py (PID 80) exited with status 1 while serving"),
        entry("PID 77", "t4", 3, "disk full", std::nullopt, "notes.py"),
        entry("PID 77", "t3", 3, "older error of the same run"),
        entry("PID 77", "t2", 5, "decision: restore", "restore"),
        entry("PID 77", "t1", 5, "older decision", "init"),
    });
    CHECK(r.error == "app notes.py (PID 80) exited with status 1 while serving");
    CHECK(r.error_time == "t5");
    CHECK(r.decision == "restore");
    CHECK(r.decision_time == "t2");
    CHECK(taken == 4);  // both known: nothing older is read
}

TEST_CASE("last run: priorities worse than err count, warnings do not", "[core]") {
    CHECK(scan({entry("a", "t", 2, "critical")}).first.error == "critical");
    CHECK(scan({entry("a", "t", 0, "emergency")}).first.error == "emergency");
    CHECK_FALSE(scan({entry("a", "t", 4, "a warning")}).first.error.has_value());
}

TEST_CASE("last run: nothing read, nothing known", "[core]") {
    const auto [r, taken] = scan({});
    CHECK(r.run.empty());
    CHECK_FALSE(r.decision.has_value());
    CHECK_FALSE(r.error.has_value());
    CHECK(taken == 0);
}

TEST_CASE("last run: by-hand runs are told apart by PID", "[core]") {
    const auto [r, taken] = scan({
        entry("PID 200", "t2", 6, "started"),
        entry("PID 100", "t1", 3, "an earlier run's error"),
    });
    CHECK(r.run == "PID 200");
    CHECK_FALSE(r.error.has_value());
    CHECK(taken == 2);
}
