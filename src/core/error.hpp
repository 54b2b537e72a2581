// Error policy (read this before adding an error):
//
// Every failure bartl reports is a bartl::Error. Each subclass maps to exactly
// one process exit code (bartl(7) "Binaries and exit codes") and one D-Bus
// error name. Throw the most specific class; the message is shown to the
// operator as is, so it names what is wrong and where (file:line:column, the
// path, the backup id, both versions) and, when one exists, the way out.
// Code below the daemon never calls exit(): it throws, and main() maps the
// error to the exit code. Errors that mean "retry later" (store unreachable,
// hook failed, app died) are RuntimeError (exit 1, systemd restarts);
// errors that a restart cannot fix (usage, downgrade, foreign state,
// configuration) have their own exit codes listed in RestartPreventExitStatus=.
#pragma once

#include <stdexcept>
#include <string>

namespace bartl {

/// Process exit codes of bartld (bartl(7); sysexits(3) values where they fit).
enum class ExitCode : int {
    ok = 0,
    runtime = 1,     ///< runtime failure: store unreachable, hook failed, app died
    usage = 64,      ///< EX_USAGE: bad command line
    downgrade = 65,  ///< state newer than engine: downgrade refused
    foreign = 66,    ///< declared state present, not bartl's: refused
    config = 78,     ///< EX_CONFIG: configuration error
};

/// Base of every bartl error. what() is the operator-facing message.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
    /// Exit code bartld ends with when this error reaches main().
    virtual ExitCode exit_code() const noexcept { return ExitCode::runtime; }
    /// D-Bus error name used when this error answers a method call.
    virtual const char* dbus_name() const noexcept { return "app.bartl.Error.Failed"; }
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
    const char* dbus_name() const noexcept override { return "app.bartl.Error.StoreUnavailable"; }
};

/// Data failed integrity checks: size, SHA-256, archive structure (exit 1).
class IntegrityError : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
    const char* dbus_name() const noexcept override { return "app.bartl.Error.Integrity"; }
};

/// Another process holds the instance lock (exit 1).
class LockedError : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
    const char* dbus_name() const noexcept override { return "app.bartl.Error.Locked"; }
};

/// SIGTERM/SIGINT arrived before serving: a clean stop between steps (exit 0).
class StopRequested : public Error {
public:
    using Error::Error;
    ExitCode exit_code() const noexcept override { return ExitCode::ok; }
};

/// Bad command line (exit 64).
class UsageError : public Error {
public:
    using Error::Error;
    ExitCode exit_code() const noexcept override { return ExitCode::usage; }
    const char* dbus_name() const noexcept override { return "app.bartl.Error.Usage"; }
};

/// State is newer than the engine (exit 65).
class DowngradeError : public Error {
public:
    using Error::Error;
    ExitCode exit_code() const noexcept override { return ExitCode::downgrade; }
    const char* dbus_name() const noexcept override { return "app.bartl.Error.Downgrade"; }
};

/// Declared state exists without marker or intent: not bartl's (exit 66).
class ForeignStateError : public Error {
public:
    using Error::Error;
    ExitCode exit_code() const noexcept override { return ExitCode::foreign; }
    const char* dbus_name() const noexcept override { return "app.bartl.Error.ForeignState"; }
};

/// Invalid configuration; message starts with FILE:LINE:COLUMN where known (exit 78).
class ConfigError : public Error {
public:
    using Error::Error;
    ExitCode exit_code() const noexcept override { return ExitCode::config; }
    const char* dbus_name() const noexcept override { return "app.bartl.Error.Config"; }
};

}  // namespace bartl
