// last_run: `bartlctl status` reports the last bartld run's decision and error, never an
// earlier run's, from the three entries it looks up in the journal.
#include <catch2/catch.hpp>

#include "core/last_run.hpp"

using namespace bartl;

namespace {

RunEntry entry(std::string run, std::string time, int priority, std::string message,
               std::optional<std::string> decision = std::nullopt, std::string identifier = "bartld") {
    return RunEntry{std::move(run), std::move(time), priority, std::move(identifier), std::move(decision),
                    std::move(message)};
}

}  // namespace

TEST_CASE("last run: a fixed config typo's error is an earlier run's, not shown", "[core]") {
    // The run after the fix served and was stopped; the one before exited 78.
    const auto r = last_run({
        .newest = entry("inv-2", "2026-12-01T22:10:05Z", 5, "stopped: SIGTERM received"),
        .decision = entry("inv-2", "2026-12-01T22:09:00Z", 5, "decision: serve", "serve"),
        .error = entry("inv-1", "2026-12-01T22:08:00Z", 3, "/etc/bartl/notes.toml:3:7: unknown key \"exce\""),
    });
    CHECK(r.run == "inv-2");
    CHECK(r.decision == "serve");
    CHECK(r.decision_time == "2026-12-01T22:09:00Z");
    CHECK_FALSE(r.error.has_value());
    CHECK_FALSE(r.error_time.has_value());
}

TEST_CASE("last run: its own failure is shown, without an earlier run's decision", "[core]") {
    const auto failed = entry("inv-3", "2026-12-01T22:12:00Z", 3, "/etc/bartl/notes.toml:3:7: unknown key \"exce\"");
    const auto r = last_run({
        .newest = failed,
        .decision = entry("inv-2", "2026-12-01T22:09:00Z", 5, "decision: serve", "serve"),
        .error = failed,
    });
    CHECK(r.run == "inv-3");
    CHECK(r.error == "/etc/bartl/notes.toml:3:7: unknown key \"exce\"");
    CHECK(r.error_time == "2026-12-01T22:12:00Z");
    CHECK_FALSE(r.decision.has_value());
}

TEST_CASE("last run: the run's decision and error together", "[core]") {
    const auto exited = entry("PID 77", "t5", 3, "app notes.py (PID 80) exited with status 1 while serving");
    const auto r = last_run({.newest = exited, .decision = entry("PID 77", "t2", 5, "decision: restore", "restore"),
                             .error = exited});
    CHECK(r.run == "PID 77");
    CHECK(r.error == "app notes.py (PID 80) exited with status 1 while serving");
    CHECK(r.error_time == "t5");
    CHECK(r.decision == "restore");
    CHECK(r.decision_time == "t2");
}

TEST_CASE("last run: an app's err line or a warning is not bartld's error", "[core]") {
    const auto newest = entry("a", "t3", 6, "backup 2026-12-01T22-00-00Z uploaded");
    CHECK_FALSE(last_run({.newest = newest, .error = entry("a", "t2", 3, "disk full", std::nullopt, "notes.py")})
                    .error.has_value());
    CHECK_FALSE(last_run({.newest = newest, .error = entry("a", "t2", 4, "a warning")}).error.has_value());
    CHECK(last_run({.newest = newest, .error = entry("a", "t2", 2, "critical")}).error == "critical");
    CHECK(last_run({.newest = newest, .error = entry("a", "t2", 0, "emergency")}).error == "emergency");
}

TEST_CASE("last run: an entry that names no decision is no decision", "[core]") {
    const auto newest = entry("a", "t3", 6, "started");
    CHECK_FALSE(last_run({.newest = newest, .decision = entry("a", "t2", 5, "decision: ?")}).decision.has_value());
}

TEST_CASE("last run: nothing found, nothing known", "[core]") {
    const auto r = last_run({});
    CHECK(r.run.empty());
    CHECK_FALSE(r.decision.has_value());
    CHECK_FALSE(r.error.has_value());
    // A decision or error without bartld's newest entry (the caller looks them up only after
    // it) is never taken either.
    const auto orphan = last_run({.decision = entry("a", "t", 5, "decision: init", "init"),
                                  .error = entry("a", "t", 3, "failed")});
    CHECK(orphan.run.empty());
    CHECK_FALSE(orphan.decision.has_value());
    CHECK_FALSE(orphan.error.has_value());
}

TEST_CASE("last run: by-hand runs are told apart by PID", "[core]") {
    const auto r = last_run({.newest = entry("PID 200", "t2", 6, "started"),
                             .error = entry("PID 100", "t1", 3, "an earlier run's error")});
    CHECK(r.run == "PID 200");
    CHECK_FALSE(r.error.has_value());
}
