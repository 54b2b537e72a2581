// Error policy (read this before adding an error):
//
// Every failure bartl reports is a bartl::Error. Each class has one ErrorKind, and the one
// table below maps each kind to exactly one process exit code (bartl(7) "BINARIES AND EXIT CODES") and
// one D-Bus error name: bartld's main(), the D-Bus adaptor and bartlctl all read that table,
// so a daemon-side error reaches bartlctl's exit status unchanged. Throw the most specific
// class; the message is shown to the operator as is, so it names what is wrong and where
// (file:line:column, the path, the backup id, both versions) and, when one exists, the way
// out. Code below the daemon never calls exit(): it throws, and main() maps the error to the
// exit code. Errors that mean "retry later" (store unreachable, hook failed, app died,
// fenced) exit 1 and systemd restarts; errors that a restart cannot fix (usage, downgrade,
// foreign state, configuration) have their own exit codes listed in RestartPreventExitStatus=.
#pragma once

#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace bartl {

/// Process exit codes (bartl(7); sysexits(3) values where they fit).
enum class ExitCode : int {
    ok = 0,
    runtime = 1,      ///< runtime failure: store unreachable, hook failed, app died, fenced
    not_running = 3,  ///< bartlctl only: the daemon is not running (LSB "program is not running")
    denied = 4,       ///< bartlctl only: the bus policy refused the call (LSB "insufficient privilege")
    usage = 64,       ///< EX_USAGE: bad command line
    downgrade = 65,   ///< state newer than engine: downgrade refused
    foreign = 66,     ///< declared state present, not bartl's: refused
    config = 78,      ///< EX_CONFIG: configuration error
};

/// Every kind of failure bartl distinguishes; one row of error_table() each.
enum class ErrorKind {
    failed,                 ///< any other runtime failure (hook failed, app died, I/O)
    store_unavailable,      ///< the store did not answer or denied access
    store_not_initialized,  ///< the location answered but holds no bartl store identity object
    store_read_only,        ///< the store answers reads but refuses writes (read-only medium or credentials)
    not_found,              ///< a named object, backup or instance does not exist
    integrity,              ///< data failed its checks (size, SHA-256, archive structure)
    locked,                 ///< another process works on this instance
    fenced,                 ///< this state is no longer the store's writer (split brain)
    precondition_failed,    ///< a conditional store write lost a race with another writer
    busy,                   ///< a one-at-a-time job is already running
    not_serving,            ///< the request needs a serving instance
    stop_requested,         ///< SIGTERM/SIGINT or a cancelled job: a clean stop
    usage,                  ///< bad command line
    downgrade,              ///< state newer than engine
    foreign,                ///< data present that bartl did not create
    config,                 ///< invalid configuration
    not_running,            ///< bartlctl: no daemon answers for the instance
    denied,                 ///< bartlctl: the bus policy refused the call
};

/// One row of the error table.
struct ErrorInfo {
    ErrorKind kind;
    ExitCode exit_code;
    const char* dbus_name;  ///< "app.bartl.Error.X" (dbus/app.bartl.Instance1.xml lists them)
    const char* meaning;    ///< one line for the man pages and tests
};

/// The whole table, one row per ErrorKind, in enum order.
std::span<const ErrorInfo> error_table() noexcept;
/// The row of `kind`.
const ErrorInfo& error_info(ErrorKind kind) noexcept;
/// The kind whose D-Bus error name is `dbus_name`, std::nullopt for names bartl does not define.
std::optional<ErrorKind> error_kind_for_dbus_name(std::string_view dbus_name) noexcept;

/// Base of every bartl error. what() is the operator-facing message.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
    /// The row of error_table() this error belongs to.
    virtual ErrorKind kind() const noexcept { return ErrorKind::failed; }
    /// Exit code bartld (or bartlctl) ends with when this error reaches main().
    ExitCode exit_code() const noexcept { return error_info(kind()).exit_code; }
    /// D-Bus error name used when this error answers a method call.
    const char* dbus_name() const noexcept { return error_info(kind()).dbus_name; }
};

/// Runtime failure worth a retry (exit 1).
class RuntimeError : public Error {
public:
    using Error::Error;
};

/// Backup store did not answer, or denied access (exit 1). Never a "no backups" answer.
class StoreUnavailable : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
    ErrorKind kind() const noexcept override { return ErrorKind::store_unavailable; }
};

/// The store location answered but holds no bartl-store.json: an empty directory, an
/// unmounted mount point, a wrong bucket or prefix (exit 1; the message names `bartld
/// --init-store`). Like StoreUnavailable, never a "no backups" answer (invariant 5).
class StoreNotInitialized : public StoreUnavailable {
public:
    using StoreUnavailable::StoreUnavailable;
    ErrorKind kind() const noexcept override { return ErrorKind::store_not_initialized; }
};

/// The store answers reads but refuses writes: a read-only filesystem, permissions, read-only
/// credentials (exit 1). A restore from it still works; fencing and backups cannot.
class StoreReadOnly : public StoreUnavailable {
public:
    using StoreUnavailable::StoreUnavailable;
    ErrorKind kind() const noexcept override { return ErrorKind::store_read_only; }
};

/// A file system bartl writes to is full: ENOSPC or EDQUOT (exit 1, retried). The message
/// names the file system and its sizes where the writer knows them.
class DiskFull : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
};

/// The store's disk is full: it answers reads, a backup does not fit (exit 1). Like
/// StoreReadOnly a problem of writes, so only a backup that fits again clears it.
class StoreFull : public StoreUnavailable {
public:
    using StoreUnavailable::StoreUnavailable;
};

/// A named object, backup or instance does not exist (exit 1).
class NotFound : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
    ErrorKind kind() const noexcept override { return ErrorKind::not_found; }
};

/// Data failed integrity checks: size, SHA-256, archive structure (exit 1).
class IntegrityError : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
    ErrorKind kind() const noexcept override { return ErrorKind::integrity; }
};

/// Another process holds the instance lock (exit 1).
class LockedError : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
    ErrorKind kind() const noexcept override { return ErrorKind::locked; }
};

/// This instance's state is no longer the store's writer: another state (a restore on
/// another host) took the store over. Backups and retention are refused (invariant 9, exit 1).
class FencedError : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
    ErrorKind kind() const noexcept override { return ErrorKind::fenced; }
};

/// A conditional store write (If-None-Match / If-Match) found the object changed by someone
/// else since it was read (exit 1).
class PreconditionFailed : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
    ErrorKind kind() const noexcept override { return ErrorKind::precondition_failed; }
};

/// A request that would need a second instance of a one-at-a-time job (exit 1).
class BusyError : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
    ErrorKind kind() const noexcept override { return ErrorKind::busy; }
};

/// A request that needs a serving instance (Backup() while restoring, ...) (exit 1).
class NotServingError : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
    ErrorKind kind() const noexcept override { return ErrorKind::not_serving; }
};

/// SIGTERM/SIGINT arrived, or the job was cancelled: a clean stop between steps (exit 0).
class StopRequested : public Error {
public:
    using Error::Error;
    ErrorKind kind() const noexcept override { return ErrorKind::stop_requested; }
};

/// Bad command line (exit 64).
class UsageError : public Error {
public:
    using Error::Error;
    ErrorKind kind() const noexcept override { return ErrorKind::usage; }
};

/// State is newer than the engine (exit 65).
class DowngradeError : public Error {
public:
    using Error::Error;
    ErrorKind kind() const noexcept override { return ErrorKind::downgrade; }
};

/// Declared state exists that bartl did not create (exit 66).
class ForeignStateError : public Error {
public:
    using Error::Error;
    ErrorKind kind() const noexcept override { return ErrorKind::foreign; }
};

/// Invalid configuration; message starts with FILE:LINE:COLUMN where known (exit 78).
class ConfigError : public Error {
public:
    using Error::Error;
    ErrorKind kind() const noexcept override { return ErrorKind::config; }
};

/// bartlctl: no bartld answers for the instance (exit 3).
class NotRunningError : public Error {
public:
    using Error::Error;
    ErrorKind kind() const noexcept override { return ErrorKind::not_running; }
};

/// bartlctl: the bus policy refused the call (exit 4).
class DeniedError : public Error {
public:
    using Error::Error;
    ErrorKind kind() const noexcept override { return ErrorKind::denied; }
};

/// Throws the error class of `kind` with `message` (bartlctl turns a D-Bus error reply back
/// into the daemon's error, so its exit status is the daemon's).
[[noreturn]] void throw_error(ErrorKind kind, const std::string& message);

}  // namespace bartl
