// What an instance whose bartld is not on the bus looks like in the fleet view
// (`bartlctl instances`, bartlctl(1)): a phase word and the problem to act on, from what
// systemd says of its unit. Pure: the caller reads the unit's properties.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace bartl {

/// The properties of bartld@NAME.service that tell why it is not running
/// (org.freedesktop.systemd1.Unit and .Service, as `systemctl show` names them).
struct UnitFacts {
    std::string unit;          ///< "bartld@NAME.service"
    std::string active_state;  ///< ActiveState: active, activating, deactivating, inactive, failed
    std::string sub_state;     ///< SubState: auto-restart, dead, failed, start, ...
    std::string result;        ///< Result: success, exit-code, signal, start-limit-hit, timeout, ...
    int exit_status = 0;       ///< ExecMainStatus: the exit status (or signal) of the last run
    std::uint32_t restarts = 0;  ///< NRestarts
};

/// One row of the fleet view for an instance without a bartld on the bus.
struct OfflineRow {
    std::string phase;    ///< "failed", "restarting", "starting", "stopping", "stopped", "not running"
    std::string problem;  ///< what is wrong and what to do, one line; "-" when nothing is
};

/// The meaning of a bartld exit status (bartl(7) BINARIES AND EXIT CODES), e.g.
/// "configuration error (exit 78)"; "exit N" for a status bartl does not define.
std::string exit_status_text(int status);

/// The fleet row of an instance whose bartld does not answer. `unit`: what systemd says
/// (std::nullopt: no systemd, or no unit file). `config_error`: the message of loading its
/// configuration, when that fails (shown only when the unit says nothing worse).
OfflineRow offline_row(const std::optional<UnitFacts>& unit, const std::optional<std::string>& config_error);

}  // namespace bartl
