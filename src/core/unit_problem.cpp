#include "core/unit_problem.hpp"

#include <fmt/format.h>

namespace bartl {

std::string exit_status_text(int status) {
    switch (status) {
        case 1: return "runtime failure (exit 1)";
        case 64: return "usage error (exit 64)";
        case 65: return "downgrade refused (exit 65)";
        case 66: return "foreign state refused (exit 66)";
        case 78: return "configuration error (exit 78)";
        default: return fmt::format("exit {}", status);
    }
}

namespace {

/// RestartPreventExitStatus= of the shipped units: statuses systemd does not restart on.
bool prevents_restart(int status) { return status == 64 || status == 65 || status == 66 || status == 78; }

/// Why the last run ended, from Result and ExecMainStatus (systemd.exec(5) $SERVICE_RESULT).
std::string last_end(const UnitFacts& u) {
    if (u.result == "exit-code") return exit_status_text(u.exit_status);
    if (u.result == "signal" || u.result == "core-dump") return fmt::format("killed by signal {}", u.exit_status);
    if (u.result == "timeout") return "start or stop timed out";
    if (u.result == "watchdog") return "watchdog timeout (bartld hung)";
    return u.result.empty() ? std::string("unknown") : u.result;
}

}  // namespace

OfflineRow offline_row(const std::optional<UnitFacts>& unit, const std::optional<std::string>& config_error) {
    const std::string config = config_error ? "configuration error: " + *config_error : std::string();
    if (!unit) return {"not running", config.empty() ? "no systemd unit known" : config};
    const UnitFacts& u = *unit;
    if (u.active_state == "failed") {
        // The start limit hides the cause behind "start-limit-hit": the last run's exit status
        // still says it (systemd keeps ExecMainStatus).
        // systemd 252 keeps the last run's Result when an automatic restart hits the limit:
        // a unit that was restarted and then failed with a status it restarts on gave up.
        const bool restartable = u.result != "exit-code" || !prevents_restart(u.exit_status);
        if (u.result == "start-limit-hit" || (u.restarts > 0 && restartable && u.result != "success"))
            return {"failed", fmt::format("start limit hit after {} restart(s), last run: {}; fix it, then "
                                          "systemctl reset-failed {} and start it",
                                          u.restarts,
                                          u.result == "start-limit-hit" ? exit_status_text(u.exit_status) : last_end(u),
                                          u.unit)};
        if (config_error && u.result == "exit-code" && u.exit_status == 78)
            return {"failed", exit_status_text(78) + ": " + *config_error};
        return {"failed", last_end(u) + (config.empty() ? "" : "; " + config)};
    }
    if (u.active_state == "activating" && u.sub_state == "auto-restart")
        return {"restarting", fmt::format("{}, restart {} pending", last_end(u), u.restarts + 1)};
    if (u.active_state == "activating") return {"starting", "-"};
    if (u.active_state == "deactivating") return {"stopping", "-"};
    if (u.active_state == "active")  // running, yet not on the bus: no bus, or bartld hung before it
        return {"not on bus", "the unit runs but its bartld does not answer on the system bus"};
    return {"stopped", config.empty() ? "-" : config};
}

}  // namespace bartl
