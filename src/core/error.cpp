// The error table (core/error.hpp): kind <-> exit code <-> D-Bus error name.
#include "core/error.hpp"

#include <array>

namespace bartl {
namespace {

constexpr std::array<ErrorInfo, 18> kTable{{
    {ErrorKind::failed, ExitCode::runtime, "app.bartl.Error.Failed", "runtime failure (hook failed, app died, I/O)"},
    {ErrorKind::store_unavailable, ExitCode::runtime, "app.bartl.Error.StoreUnavailable",
     "the backup store did not answer or denied access"},
    {ErrorKind::store_not_initialized, ExitCode::runtime, "app.bartl.Error.StoreNotInitialized",
     "the store location holds no bartl store identity (bartld --init-store)"},
    {ErrorKind::store_read_only, ExitCode::runtime, "app.bartl.Error.StoreReadOnly",
     "the store answers reads but refuses writes"},
    {ErrorKind::not_found, ExitCode::runtime, "app.bartl.Error.NotFound", "no such backup, object or instance"},
    {ErrorKind::integrity, ExitCode::runtime, "app.bartl.Error.Integrity",
     "data failed its integrity checks (size, SHA-256, archive)"},
    {ErrorKind::locked, ExitCode::runtime, "app.bartl.Error.Locked", "another process works on this instance"},
    {ErrorKind::fenced, ExitCode::runtime, "app.bartl.Error.Fenced",
     "another state took the store over: backups and retention refused"},
    {ErrorKind::precondition_failed, ExitCode::runtime, "app.bartl.Error.PreconditionFailed",
     "a conditional store write lost a race with another writer"},
    {ErrorKind::busy, ExitCode::runtime, "app.bartl.Error.Busy", "a one-at-a-time job is already running"},
    {ErrorKind::not_serving, ExitCode::runtime, "app.bartl.Error.NotServing", "the instance is not serving yet"},
    {ErrorKind::stop_requested, ExitCode::ok, "app.bartl.Error.Stopped", "stopped on request (SIGTERM, cancelled)"},
    {ErrorKind::usage, ExitCode::usage, "app.bartl.Error.Usage", "bad command line or arguments"},
    {ErrorKind::downgrade, ExitCode::downgrade, "app.bartl.Error.Downgrade", "state newer than engine: refused"},
    {ErrorKind::foreign, ExitCode::foreign, "app.bartl.Error.ForeignState",
     "declared state holds data bartl did not create"},
    {ErrorKind::config, ExitCode::config, "app.bartl.Error.Config", "invalid configuration"},
    {ErrorKind::not_running, ExitCode::not_running, "app.bartl.Error.NotRunning", "no bartld serves the instance"},
    {ErrorKind::denied, ExitCode::denied, "org.freedesktop.DBus.Error.AccessDenied", "refused by the bus policy"},
}};

constexpr bool table_in_enum_order() {
    for (std::size_t i = 0; i < kTable.size(); ++i)
        if (static_cast<std::size_t>(kTable[i].kind) != i) return false;
    return true;
}
static_assert(table_in_enum_order(), "kTable rows must follow ErrorKind's order");

}  // namespace

std::span<const ErrorInfo> error_table() noexcept { return kTable; }

const ErrorInfo& error_info(ErrorKind kind) noexcept { return kTable[static_cast<std::size_t>(kind)]; }

std::optional<ErrorKind> error_kind_for_dbus_name(std::string_view dbus_name) noexcept {
    for (const auto& row : kTable)
        if (dbus_name == row.dbus_name) return row.kind;
    return std::nullopt;
}

void throw_error(ErrorKind kind, const std::string& message) {
    switch (kind) {
    case ErrorKind::failed: throw RuntimeError(message);
    case ErrorKind::store_unavailable: throw StoreUnavailable(message);
    case ErrorKind::store_not_initialized: throw StoreNotInitialized(message);
    case ErrorKind::store_read_only: throw StoreReadOnly(message);
    case ErrorKind::not_found: throw NotFound(message);
    case ErrorKind::integrity: throw IntegrityError(message);
    case ErrorKind::locked: throw LockedError(message);
    case ErrorKind::fenced: throw FencedError(message);
    case ErrorKind::precondition_failed: throw PreconditionFailed(message);
    case ErrorKind::busy: throw BusyError(message);
    case ErrorKind::not_serving: throw NotServingError(message);
    case ErrorKind::stop_requested: throw StopRequested(message);
    case ErrorKind::usage: throw UsageError(message);
    case ErrorKind::downgrade: throw DowngradeError(message);
    case ErrorKind::foreign: throw ForeignStateError(message);
    case ErrorKind::config: throw ConfigError(message);
    case ErrorKind::not_running: throw NotRunningError(message);
    case ErrorKind::denied: throw DeniedError(message);
    }
    throw RuntimeError(message);
}

}  // namespace bartl
