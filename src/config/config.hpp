// bartl.toml: loading and validation (bartl(7) "Configuration").
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "core/retention.hpp"
#include "core/store_settings.hpp"

namespace bartl {

/// How bartld decides the app is ready ([app] ready; bartl.toml(5) says what each proves).
struct Readiness {
    enum class Kind { notify, started, tcp, http, command } kind = Kind::started;
    std::string host;  ///< tcp/http: host name or address
    int port = 0;      ///< tcp/http: port
    std::string url;   ///< http: the full URL as configured
    std::string path;  ///< http: the request path ("/" when the URL has none), including any query
    std::vector<std::string> command;          ///< command: [app] ready_command, exit 0 = ready
    std::chrono::milliseconds interval{500};   ///< command: [app] ready_interval, > 0
};

/// [app] user and group: who the app, its readiness probe, the version command, hooks and
/// migration scripts run as. Resolved in the user database (getpwnam(3), getgrnam(3),
/// getgrouplist(3)) when the config is loaded, unless LoadOptions::resolve_users is off.
struct RunAs {
    std::string user;             ///< the user's name (as written when not resolved)
    uid_t uid = 0;
    std::string group;            ///< [app] group, else the name of the user's primary group ("" when not resolved)
    std::string user_written;     ///< [app] user as written (a name, or a numeric UID)
    std::string group_written;    ///< [app] group as written, "" when not set
    gid_t gid = 0;
    std::vector<gid_t> groups;    ///< supplementary groups of the user in the database, with gid
    std::string home;             ///< the user's home directory (for HOME=)
    std::string where;            ///< "FILE:LINE:COLUMN" of [app] user, for later messages
};

/// One [[state.databases]] entry (bartl.toml(5) "DATABASES"): a database that is part of the
/// declared state, observed and initialised like a state directory (state/database.hpp).
struct Database {
    enum class Type { postgresql, mariadb, sqlite } type = Type::sqlite;
    /// The database's name on its server (postgresql, mariadb); a label for sqlite. Letters,
    /// digits, '_' and '-', at most 63 characters; unique among the entries, also after the
    /// mapping to BARTL_DB_<NAME>_ variables (upper case, '-' as '_').
    std::string name;
    /// postgresql: a libpq conninfo string without dbname ("host=/run/postgresql user=notes";
    /// "" = libpq's defaults). mariadb: "socket=PATH user=NAME [host=H] [port=N]", whitespace
    /// separated, no quoting. "" for sqlite.
    std::string connection;
    std::filesystem::path path;       ///< sqlite: the database file (absolute, normalised)
    /// The systemd credential ($CREDENTIALS_DIRECTORY/NAME) holding the password
    /// (postgresql, mariadb); "" = none (peer, unix_socket or trust authentication).
    std::string password_credential;
    std::string where;                ///< "FILE:LINE:COLUMN" of the entry, for later messages

    /// "postgresql", "mariadb" or "sqlite": the component kind (core/marker.hpp component_id()).
    const char* type_name() const noexcept;
    /// True when the server is on this host (a Unix socket, localhost, or no host given), so
    /// the unit is ordered after its local service. Always true for sqlite.
    bool local() const;
    /// The value of `key` in a mariadb connection string ("" when not set).
    std::string connection_value(const std::string& key) const;
    /// The NAME of its BARTL_DB_<NAME>_* variables: the name in upper case, '-' as '_'.
    std::string env_name() const;
};

/// The validated configuration of one instance. Every path is absolute.
struct Config {
    std::filesystem::path file;  ///< the file it was loaded from ("" when from a string)
    std::string instance;        ///< --instance NAME, else app.name
    /// Loaded from a file named by --config FILE (load_config() without an instance name), not
    /// by --instance NAME: hints repeat the option the operator used.
    bool named_by_file = false;

    // [app]
    std::string app_name;                     ///< [a-z0-9][a-z0-9_-]*
    std::optional<std::string> version;       ///< literal engine version (exactly one of the three)
    std::optional<std::filesystem::path> version_file;
    std::vector<std::string> version_command; ///< argv; empty when not set
    std::chrono::milliseconds version_command_timeout{10000};  ///< [app] version_timeout, default 10s; 0 = no limit
    /// [app] version_pattern: a POSIX extended regular expression with exactly one capture
    /// group, which picks the version out of version_command's output or version_file's
    /// contents (VersionPattern).
    std::optional<std::string> version_pattern;
    std::optional<RunAs> run_as;              ///< [app] user / group; unset = bartld's own user
    std::vector<std::string> exec;            ///< argv; empty = state-only instance
    std::map<std::string, std::string> environment;  ///< [app] environment table, added to the child's env
    std::optional<std::filesystem::path> working_directory;  ///< [app] working_directory
    Readiness ready;                          ///< default "started" when exec is set
    std::chrono::milliseconds ready_timeout{90000};  ///< [app] ready_timeout, default 90s, > 0
    std::chrono::milliseconds stop_timeout{30000};   ///< [app] stop_timeout, default 30s, > 0

    // [state]
    std::vector<std::filesystem::path> state_paths;  ///< absolute, distinct, none inside another
    /// [state] moved: old path -> declared path, for restoring a backup taken when a state
    /// directory lived elsewhere (another server's layout). Restore maps by name only.
    std::map<std::filesystem::path, std::filesystem::path> moved;
    std::filesystem::path bartl_dir;  ///< [state] bartl_dir: marker, intent, lock; default /var/lib/bartl/NAME
    /// [[state.databases]] in declaration order: names unique; a sqlite path outside every
    /// state path and bartl_dir, and distinct.
    std::vector<Database> databases;

    // [hooks]
    std::vector<std::string> hook_init;
    /// [hooks] init_component: fills $BARTL_STAGING for one component declared after the
    /// state was created ($BARTL_COMPONENT names it); empty = such components start empty.
    std::vector<std::string> hook_init_component;
    std::optional<std::filesystem::path> migrations_dir;
    std::vector<std::string> hook_pre_backup;
    std::vector<std::string> hook_post_backup;
    std::vector<std::string> hook_post_restore;
    std::chrono::milliseconds hook_timeout{3600000};  ///< [hooks] timeout, default 1h; 0 = no limit

    // [backup]
    std::string store;                   ///< URL; "" = no store configured
    StoreSettings store_settings;        ///< [store], [store.s3], [store.sftp]
    std::chrono::milliseconds interval{24LL * 3600 * 1000};  ///< [backup] interval, default 24h, > 0
    /// [backup] fence_check: how often a serving bartld reads the store's writer record to
    /// notice a takeover elsewhere before its next backup; default 5 minutes, 0 = never.
    std::chrono::milliseconds fence_check{5LL * 60 * 1000};
    bool before_migrate = true;
    enum class Consistency { live, stop } consistency = Consistency::live;
    int compression_level = 3;           ///< from "zstd:N", 1..19
    /// From "zstd:N:T": zstd workers. Default 0: one per core, at most 4 (about 5 MiB of
    /// memory each); 1 = one compressing thread, streaming in a few MiB.
    int compression_threads = 0;
    /// [backup] nice, 0..19 (default 10): added to the niceness of the thread taking a backup,
    /// which its zstd workers, uploads and tools (pg_dump, age, hooks) inherit; the app keeps
    /// bartld's.
    int backup_nice = 10;
    RetentionPolicy retention{7, 7, 4, 12, 3};
    /// [backup] exclude: globs relative to each state path left out of every backup
    /// (blob/blob.hpp path_excluded()); such files are not restored.
    std::vector<std::string> backup_exclude;
    /// [backup] encrypt_to: age recipients ("age1...", "ssh-ed25519 AAAA...", "ssh-rsa AAAA...");
    /// with encrypt_to_file, backups are age-encrypted to all of them (bartl(7) "ENCRYPTION").
    std::vector<std::string> encrypt_to;
    /// [backup] encrypt_to_file: a recipients file (one recipient a line, `age -R`), absolute.
    std::optional<std::filesystem::path> encrypt_to_file;
    /// [backup] identity_file: an age identity file (or OpenSSH private key) for restoring
    /// encrypted backups, besides the credential $CREDENTIALS_DIRECTORY/age-identity.
    std::optional<std::filesystem::path> identity_file;
    /// [backup] signing_key_file: the OpenSSH Ed25519 private key that signs sidecars, used
    /// when the credential $CREDENTIALS_DIRECTORY/signing-key does not exist (bartl(7)
    /// "KEY MANAGEMENT"). Absolute.
    std::optional<std::filesystem::path> signing_key_file;
    /// [backup] trusted_keys: "ssh-ed25519 AAAA... COMMENT" lines, as written (checked by
    /// check_config_files()). With trusted_keys_file, restores take only backups signed by one.
    std::vector<std::string> trusted_keys;
    /// [backup] trusted_keys_file: allowed_signers or authorized_keys lines, absolute.
    std::optional<std::filesystem::path> trusted_keys_file;
    /// Whether restores require a signature by a trusted key.
    bool requires_signature() const noexcept { return !trusted_keys.empty() || trusted_keys_file.has_value(); }
    /// Whether new backups are encrypted.
    bool encrypts() const noexcept { return !encrypt_to.empty() || encrypt_to_file.has_value(); }

    /// Where each key was set, "FILE:LINE:COLUMN", by label ("[hooks] init", "[state]
    /// paths[1]", "[backup] store"), for checks made after loading (hooks on disk).
    std::map<std::string, std::string> positions;
    /// "FILE:LINE:COLUMN" of `label`, or the file name when it was not set in the file.
    std::string where(const std::string& label) const;
};

/// A compiled POSIX extended regular expression (regex(7), regcomp(3) with REG_EXTENDED):
/// [app] version_pattern. libc's, not std::regex, whose templates would add some 80 KiB of
/// code to every start for a key most instances do not set.
class VersionPattern {
public:
    /// Compiles `pattern`; throws std::invalid_argument with regerror(3)'s text.
    explicit VersionPattern(const std::string& pattern);
    ~VersionPattern();
    VersionPattern(const VersionPattern&) = delete;
    VersionPattern& operator=(const VersionPattern&) = delete;

    /// How many capture groups the pattern has.
    std::size_t groups() const noexcept;
    /// The text of the first capture group in the first match in `subject` (up to its
    /// first NUL byte); std::nullopt when the pattern matches nothing there.
    std::optional<std::string> first_group(const std::string& subject) const;

private:
    struct Compiled;
    std::unique_ptr<Compiled> re_;
};

/// What loading a configuration may consult besides the file.
struct LoadOptions {
    /// Resolve [app] user and group in the user database (the default). bartl-generator runs
    /// before the user database may be asked (systemd.generator(7)): without it RunAs holds
    /// the names as written (group "" = the user's primary group), uid, gid, groups and home
    /// stay unset, and an unknown user is no error.
    bool resolve_users = true;
};

/// Loads and validates a config file. `instance` overrides the instance name (else app.name).
/// Throws ConfigError with "FILE:LINE:COLUMN: message" for syntax errors, unknown keys, wrong
/// types, relative paths, invalid names, two version sources, missing required keys, a
/// version_pattern that is no regex or has not exactly one capture group, an [app] user or
/// group the user database does not know.
Config load_config(const std::filesystem::path& file, const std::string& instance = "",
                   const LoadOptions& options = {});

/// As load_config, from TOML text; `source_name` stands for the file name in messages.
Config parse_config(const std::string& toml_text, const std::string& source_name,
                    const std::string& instance = "", const LoadOptions& options = {});

/// How to run bartld for this instance, as the operator did, for hints: "bartld --instance
/// notes", or "bartld --config FILE" when `config` was loaded by file.
std::string bartld_command(const Config& config);

/// A bartlctl verb that works without a running bartld (adopt, restore-from, init-store,
/// forget) for this instance, for hints: "bartlctl -i notes VERB ARGS", or "bartlctl VERB -c
/// FILE ARGS" when `config` was loaded by file. `args` may be empty.
std::string bartlctl_command(const Config& config, const std::string& verb, const std::string& args = "");

/// The hint's commands that create the store identity: "`bartld ... --init-store` (or
/// `bartlctl ... init-store`)".
std::string init_store_commands(const Config& config);

/// Path of an instance's config: /etc/bartl/NAME.toml (sysconfdir from the build).
/// Throws UsageError when NAME is not a valid instance name.
std::filesystem::path instance_config_path(const std::string& instance);

}  // namespace bartl
