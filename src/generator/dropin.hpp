// What a bartld unit needs from the host to run one instance under its sandbox, and the
// drop-in that grants it (bartl-generator(8); systemd.unit(5), systemd.exec(5)). Pure: no I/O.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace bartl {

/// The unit a drop-in is written for.
struct UnitTarget {
    std::string unit;                       ///< "bartld@notes.service" or "bartld.service"
    std::filesystem::path state_directory;  ///< what the unit's StateDirectory= opens: /var/lib/bartl/notes
};

/// What one instance needs beyond the shipped unit, derived from its configuration.
struct UnitNeeds {
    /// ReadWritePaths=-PATH: the directory containing each state path (init and restore build
    /// a sibling staging directory there and rename it into place), a bartl_dir outside the
    /// unit's StateDirectory=, a file:// store, the directory of each SQLite database. Sorted;
    /// none inside another.
    std::vector<std::filesystem::path> read_write;
    /// RequiresMountsFor=: each state path, that bartl_dir, the file:// store, the directory of
    /// each SQLite database. Sorted.
    std::vector<std::filesystem::path> mounts;
    /// Directories containing state paths, created at start when missing: owner root, the
    /// app's group, mode 0750; without [app] user root:root 0755, so that an app that drops
    /// root by itself still reaches its state. Sorted.
    std::vector<std::filesystem::path> state_parents;
    /// Directories only bartld uses (a bartl_dir outside StateDirectory=), created at start
    /// when missing: root:root 0750. Sorted.
    std::vector<std::filesystem::path> private_dirs;
    std::string user;      ///< [app] user as written; "" = none (the app runs as root)
    std::string group;     ///< [app] group as written; "" = the user's primary group
    bool network = false;  ///< a remote store (s3://, sftp://): Wants=/After=network-online.target
    /// Local services the state lives in: postgresql.service, mariadb.service for each
    /// [[state.databases]] server on this host (Database::local()); a remote one sets
    /// `network` instead. Wants=/After= each. Sorted.
    std::vector<std::string> services;
    /// "FILE:LINE:COLUMN: message" for declared paths the sandbox cannot open; the drop-in
    /// leaves them out and bartld's own error names them at start.
    std::vector<std::string> warnings;
};

/// What `config` needs in `target` (see UnitNeeds). Names users and groups as written, never
/// looked up: bartl-prepare-dirs resolves them at start. Throws ConfigError when the file://
/// store URL does not name a directory.
UnitNeeds unit_needs(const Config& config, const UnitTarget& target);

/// A fingerprint of everything in `needs` that the drop-in grants (paths, owners, network,
/// services; not the warnings): 16 hex digits, FNV-1a 64 of a canonical text. Not a security
/// measure: it only detects a drop-in written for another version of the configuration.
/// Pure; equal needs give equal fingerprints in every build.
std::string sandbox_fingerprint(const UnitNeeds& needs);

/// The environment variable the drop-in sets to sandbox_fingerprint(), which bartld compares
/// with the fingerprint of the configuration it loaded (check_sandbox_fits()).
inline constexpr const char* kSandboxEnv = "BARTL_SANDBOX_FINGERPRINT";

/// The drop-in text: a header naming `config_file`, then [Unit] and [Service] with what
/// `needs` lists, Environment=BARTL_SANDBOX_FINGERPRINT=sandbox_fingerprint(needs), directories created by `prepare_dirs` (bartl-prepare-dirs, run with full
/// privileges as ExecStartPre=+ before the sandbox of ExecStart= is set up).
/// Throws std::invalid_argument when a path holds a control character (no unit file line can
/// carry it).
std::string render_dropin(const UnitNeeds& needs, const std::filesystem::path& config_file,
                          const std::filesystem::path& prepare_dirs);

/// `text` as one word of a unit file setting (systemd.syntax(7)): quoted ("...",
/// with \\ and \") when it holds anything but [A-Za-z0-9/._+:,@=~-], "%" doubled (specifiers,
/// systemd.unit(5)) and, for a command line (`exec`), "$" doubled (variable expansion).
/// Throws std::invalid_argument for control characters.
std::string unit_word(std::string_view text, bool exec = false);

/// Whether the unit bartld runs in was set up for `config`: `fingerprint` is the value of
/// BARTL_SANDBOX_FINGERPRINT that the unit's generated drop-in set ("" = not started by such a
/// unit: nothing to check), `state_directory` the unit's StateDirectory= ($STATE_DIRECTORY).
/// Throws ConfigError (exit 78) naming the configuration file and `systemctl daemon-reload`
/// when the configuration's paths, store or [app] user changed since the drop-in was written:
/// the sandbox would otherwise leave the new paths read-only and every start fail alike.
void check_sandbox_fits(const Config& config, const std::string& fingerprint,
                        const std::filesystem::path& state_directory, const std::string& unit);

}  // namespace bartl
