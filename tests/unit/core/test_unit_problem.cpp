// offline_row: `bartlctl instances` shows an instance whose bartld is not on the bus (a
// config typo, a unit at its start limit, a crash loop) with what systemd says of it, so a
// failed instance is never missing from the fleet view.
#include <catch2/catch.hpp>

#include "core/unit_problem.hpp"

using namespace bartl;

namespace {
UnitFacts unit(std::string active, std::string sub, std::string result, int status, std::uint32_t restarts = 0) {
    return {"bartld@x.service", std::move(active), std::move(sub), std::move(result), status, restarts};
}
}  // namespace

TEST_CASE("exit statuses are named as bartl(7) defines them", "[unit_problem]") {
    CHECK(exit_status_text(1) == "runtime failure (exit 1)");
    CHECK(exit_status_text(64) == "usage error (exit 64)");
    CHECK(exit_status_text(65) == "downgrade refused (exit 65)");
    CHECK(exit_status_text(66) == "foreign state refused (exit 66)");
    CHECK(exit_status_text(78) == "configuration error (exit 78)");
    CHECK(exit_status_text(3) == "exit 3");
}

TEST_CASE("a unit failed on a config typo says so, with the config's own error", "[unit_problem]") {
    const auto r = offline_row(unit("failed", "failed", "exit-code", 78), std::string("/etc/bartl/x.toml:3:1: bad"));
    CHECK(r.phase == "failed");
    CHECK(r.problem == "configuration error (exit 78): /etc/bartl/x.toml:3:1: bad");
    // Another failure while the configuration is broken now: both.
    CHECK(offline_row(unit("failed", "failed", "exit-code", 66), std::string("f:1:1: x")).problem ==
          "foreign state refused (exit 66); configuration error: f:1:1: x");
    CHECK(offline_row(unit("failed", "failed", "exit-code", 65), std::nullopt).problem == "downgrade refused (exit 65)");
}

TEST_CASE("a unit at its start limit names the last run's exit and the way out", "[unit_problem]") {
    const auto r = offline_row(unit("failed", "failed", "start-limit-hit", 1, 4), std::nullopt);
    CHECK(r.phase == "failed");
    CHECK(r.problem == "start limit hit after 4 restart(s), last run: runtime failure (exit 1); fix it, then "
                       "systemctl reset-failed bartld@x.service and start it");
}

TEST_CASE("a unit that failed after restarts hit the start limit, though systemd 252 keeps the exit result",
          "[unit_problem]") {
    // Measured on Debian 12: "Start request repeated too quickly", then Result=exit-code.
    const auto r = offline_row(unit("failed", "failed", "exit-code", 1, 8), std::nullopt);
    CHECK(r.phase == "failed");
    CHECK(r.problem == "start limit hit after 8 restart(s), last run: runtime failure (exit 1); fix it, then "
                       "systemctl reset-failed bartld@x.service and start it");
    CHECK(offline_row(unit("failed", "failed", "signal", 9, 2), std::nullopt).problem.starts_with(
        "start limit hit after 2 restart(s), last run: killed by signal 9"));
    // Statuses the unit never restarts on are their own cause, however many restarts came before.
    CHECK(offline_row(unit("failed", "failed", "exit-code", 78, 3), std::nullopt).problem ==
          "configuration error (exit 78)");
    // Failed at the first run (restarts 0): the run's own end.
    CHECK(offline_row(unit("failed", "failed", "exit-code", 1, 0), std::nullopt).problem == "runtime failure (exit 1)");
}

TEST_CASE("a unit between restarts is restarting, not failed", "[unit_problem]") {
    const auto r = offline_row(unit("activating", "auto-restart", "exit-code", 1, 2), std::nullopt);
    CHECK(r.phase == "restarting");
    CHECK(r.problem == "runtime failure (exit 1), restart 3 pending");
}

TEST_CASE("killed, timed out, hung", "[unit_problem]") {
    CHECK(offline_row(unit("failed", "failed", "signal", 9), std::nullopt).problem == "killed by signal 9");
    CHECK(offline_row(unit("failed", "failed", "core-dump", 6), std::nullopt).problem == "killed by signal 6");
    CHECK(offline_row(unit("failed", "failed", "timeout", 0), std::nullopt).problem == "start or stop timed out");
    CHECK(offline_row(unit("failed", "failed", "watchdog", 0), std::nullopt).problem == "watchdog timeout (bartld hung)");
}

TEST_CASE("stopped, starting, stopping, and running without the bus", "[unit_problem]") {
    CHECK(offline_row(unit("inactive", "dead", "success", 0), std::nullopt).phase == "stopped");
    CHECK(offline_row(unit("inactive", "dead", "success", 0), std::nullopt).problem == "-");
    CHECK(offline_row(unit("inactive", "dead", "success", 0), std::string("f:1:1: x")).problem ==
          "configuration error: f:1:1: x");
    CHECK(offline_row(unit("activating", "start", "success", 0), std::nullopt).phase == "starting");
    CHECK(offline_row(unit("deactivating", "stop-sigterm", "success", 0), std::nullopt).phase == "stopping");
    CHECK(offline_row(unit("active", "running", "success", 0), std::nullopt).phase == "not on bus");
}

TEST_CASE("no systemd to ask: the configuration's error, else not running", "[unit_problem]") {
    CHECK(offline_row(std::nullopt, std::nullopt).phase == "not running");
    CHECK(offline_row(std::nullopt, std::nullopt).problem == "no systemd unit known");
    CHECK(offline_row(std::nullopt, std::string("f:2:3: typo")).problem == "configuration error: f:2:3: typo");
}
