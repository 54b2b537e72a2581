#include "ops/config_check.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "blob/age_stage.hpp"
#include "core/state_path_rules.hpp"
#include "core/error.hpp"
#include "core/secret_file.hpp"
#include "ops/backup.hpp"
#include "ops/migrations_dir.hpp"
#include "ops/signing.hpp"
#include "state/database.hpp"
#include "util/log.hpp"

namespace bartl {
namespace {

/// `name` looked up in $PATH as execvp(3) would; std::nullopt when nowhere.
std::optional<std::filesystem::path> in_path(const std::string& name) {
    const char* env = std::getenv("PATH");
    std::stringstream dirs(env && *env ? env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        if (dir.empty()) continue;
        const auto p = std::filesystem::path(dir) / name;
        if (::access(p.c_str(), X_OK) == 0) return p;
    }
    return std::nullopt;
}

/// Encrypts nothing to `argv`'s recipients, as a backup would: age refuses a recipient it
/// cannot use (a bad key, an unsupported type, an unreadable or empty recipients file) in
/// milliseconds, so that is found now rather than at the first scheduled backup. Returns
/// age's complaint, or std::nullopt when it accepts them.
std::optional<std::string> age_refuses(std::vector<std::string> argv) {
    ChildStreamSpec spec;
    spec.argv = std::move(argv);
    spec.what = "age -r";
    try {
        run_child(std::move(spec), "");
    } catch (const ChildFailed& e) {
        // age ends each error with a line asking for bug reports; the error is the rest.
        std::istringstream lines(e.stderr_text);
        std::string line, why;
        while (std::getline(lines, line))
            if (line.rfind("age: report ", 0) != 0) why += (why.empty() ? "" : "; ") + line;
        return why.empty() ? std::string(e.what()) : why;
    }
    return std::nullopt;
}

/// [backup] encrypt_to and encrypt_to_file: age is installed, the recipients file is there,
/// and age accepts every recipient (each tried alone, so the message names the bad one).
void check_encryption(const Config& config) {
    if (!config.encrypts()) return;
    const std::string first = config.encrypt_to.empty() ? "[backup] encrypt_to_file" : "[backup] encrypt_to[0]";
    if (!in_path(kAgeProgram))
        throw ConfigError(fmt::format("{}: {} needs the program {}, which is not in PATH (install the Debian "
                                      "package age: apt-get install age)",
                                      config.where(first), first.substr(0, first.find('[', 1)), kAgeProgram));
    for (std::size_t i = 0; i < config.encrypt_to.size(); ++i) {
        const auto label = fmt::format("[backup] encrypt_to[{}]", i);
        if (auto why = age_refuses({kAgeProgram, "--encrypt", "-r", config.encrypt_to[i]}))
            throw ConfigError(fmt::format("{}: {} \"{}\" is refused by age: {}", config.where(label), label,
                                          config.encrypt_to[i], *why));
    }
    if (!config.encrypt_to_file) return;
    const auto& f = *config.encrypt_to_file;
    const auto label = std::string("[backup] encrypt_to_file");
    std::error_code ec;
    if (!std::filesystem::exists(f, ec))
        throw ConfigError(fmt::format("{}: {} {}: no such file", config.where(label), label, f.string()));
    if (::access(f.c_str(), R_OK) != 0 || std::filesystem::is_directory(f, ec))
        throw ConfigError(fmt::format("{}: {} {}: cannot be read: {}", config.where(label), label, f.string(),
                                      std::filesystem::is_directory(f, ec) ? "is a directory" : std::strerror(errno)));
    if (auto why = age_refuses({kAgeProgram, "--encrypt", "-R", f.string()}))
        throw ConfigError(fmt::format("{}: {} {} is refused by age: {}", config.where(label), label, f.string(), *why));
}

/// A file holding a secret, and where the configuration makes bartld read it.
struct SecretFile {
    std::filesystem::path path;
    std::string what;   ///< "[store.sftp] key_file", "the systemd credential sftp-key"
    std::string where;  ///< "FILE:LINE:COLUMN" of the key that uses it, else the config file
    bool credential = false;
};

/// The secret files `config` makes bartld read that exist now: [store.sftp] key_file or the
/// credential sftp-key (sftp:// stores), the credential aws-credentials (s3:// stores),
/// [backup] identity_file and signing_key_file, the credentials age-identity and signing-key,
/// and each database's password_credential.
std::vector<SecretFile> secret_files(const Config& config) {
    std::vector<SecretFile> out;
    std::filesystem::path creds;
    if (const char* d = std::getenv("CREDENTIALS_DIRECTORY"); d && *d) creds = d;
    auto credential = [&](const std::string& name, const std::string& where) {
        if (!creds.empty()) out.push_back({creds / name, "the systemd credential " + name, where, true});
    };
    auto file = [&](const std::optional<std::filesystem::path>& f, const std::string& label) {
        if (f) out.push_back({*f, label, config.where(label), false});
    };
    const std::string store_at = config.where("[backup] store");
    if (config.store.rfind("sftp://", 0) == 0) {
        if (config.store_settings.sftp.key_file) file(config.store_settings.sftp.key_file, "[store.sftp] key_file");
        else credential("sftp-key", store_at);
    }
    if (config.store.rfind("s3://", 0) == 0) credential("aws-credentials", store_at);
    file(config.identity_file, "[backup] identity_file");
    credential(kAgeIdentityCredential, config.file.string());
    file(config.signing_key_file, "[backup] signing_key_file");
    credential(kSigningKeyCredential, config.file.string());
    for (const auto& db : config.databases)
        if (!db.password_credential.empty()) credential(db.password_credential, db.where);
    std::erase_if(out, [](const SecretFile& f) {
        std::error_code ec;
        return !std::filesystem::exists(f.path, ec);
    });
    return out;
}

/// Secret files that others can read or replace (core/secret_file.hpp): a warning each, one
/// line naming the file, its mode and the command that fixes it; one that group or others can
/// write is a ConfigError at the key that names it.
void check_secret_files(const Config& config) {
    for (const auto& f : secret_files(config)) {
        struct stat st {};
        if (::stat(f.path.c_str(), &st) != 0) continue;  // reported where it is read
        const auto problem = secret_file_problem(st.st_mode, st.st_uid, ::geteuid(), f.credential);
        if (!problem) continue;
        std::string why = problem->message;
        for (auto at = why.find("FILE"); at != std::string::npos; at = why.find("FILE", at + f.path.native().size()))
            why.replace(at, 4, f.path.string());
        const auto text = fmt::format("{}: {} {}: {}", f.where, f.what, f.path.string(), why);
        if (problem->error) throw ConfigError(text);
        log::warn(text, {{"BARTL_SECRET_FILE", f.path.string()}});
    }
}

}  // namespace

std::optional<std::string> program_problem(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return fmt::format("cannot be run: {}", std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return std::string("is not a regular file");
    if ((st.st_mode & 0111) == 0) return std::string("is not executable (chmod +x)");
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fmt::format("cannot be read: {}", std::strerror(errno));
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    if (n < 0) return fmt::format("cannot be read: {}", std::strerror(errno));
    const std::string head(buf, static_cast<std::size_t>(n));
    if (head.compare(0, 4, "\x7f" "ELF") == 0) return std::nullopt;
    if (head.compare(0, 2, "#!") != 0)
        return std::string("is neither a program (ELF) nor a script starting with \"#!\": exec would fail "
                           "(add a line such as #!/bin/sh)");
    const auto eol = head.find('\n');
    if (eol == std::string::npos) return std::string("has a \"#!\" line longer than 4 KiB or no line end");
    std::string line = head.substr(2, eol - 2);
    if (!line.empty() && line.back() == '\r')
        return std::string("has Windows (CRLF) line ends: its \"#!\" line names an interpreter ending in a "
                           "carriage return, which does not exist (convert it with dos2unix or sed -i 's/\\r$//')");
    std::istringstream words(line);
    std::string interp, arg;
    words >> interp >> arg;
    if (interp.empty()) return std::string("has an empty \"#!\" line");
    if (::access(interp.c_str(), X_OK) != 0)
        return fmt::format("names the interpreter {}, which {}", interp,
                           errno == ENOENT ? "does not exist (is its package installed?)" : std::strerror(errno));
    if (std::filesystem::path(interp).filename() == "env" && !arg.empty() && arg[0] != '-' &&
        arg.find('/') == std::string::npos && !in_path(arg))
        return fmt::format("runs \"{} {}\", but {} is not in PATH", interp, arg, arg);
    return std::nullopt;
}

void check_config_files(const Config& config) {
    auto check = [&](const std::string& label, const std::vector<std::string>& argv) {
        if (argv.empty()) return;
        if (auto why = program_problem(argv.front()))
            throw ConfigError(fmt::format("{}: {} {} {}", config.where(label), label, argv.front(), *why));
    };
    check("[app] exec", config.exec);
    check("[app] version_command", config.version_command);
    check("[hooks] init", config.hook_init);
    check("[hooks] init_component", config.hook_init_component);
    check("[hooks] pre_backup", config.hook_pre_backup);
    check("[hooks] post_backup", config.hook_post_backup);
    check("[hooks] post_restore", config.hook_post_restore);
    load_database_clients(config);
    check_encryption(config);
    load_trusted_keys(config);
    check_secret_files(config);
    for (std::size_t i = 0; i < config.state_paths.size(); ++i)
        if (const auto parent = shared_parent_of_state_path(config.state_paths[i])) {
            const std::string label = fmt::format("[state] paths[{}]", i);
            log::warn(fmt::format("{}: {} {} lies directly in {}, which the unit must then make writable to "
                                  "bartld as a whole (staging is built beside a state path and renamed into "
                                  "place): declare a directory of its own, such as {}",
                                  config.where(label), label, config.state_paths[i].string(), parent->string(),
                                  (config.state_paths[i].lexically_normal() / "data").string()));
        }
    // The credential, when there, is what signs; checked when a backup is taken.
    if (config.signing_key_file && !signing_key_credential()) {
        try {
            load_signing_key(config);
        } catch (const RuntimeError& e) {
            throw ConfigError(fmt::format("{}: {}", config.where("[backup] signing_key_file"), e.what()));
        }
    }
    if (!config.migrations_dir) return;
    std::vector<MigrationScript> scripts;
    try {
        scripts = scan_migrations(config);
    } catch (const ConfigError& e) {
        throw ConfigError(fmt::format("{}: {}", config.where("[hooks] migrations"), e.what()));
    }
    for (const auto& s : scripts) {
        const auto path = *config.migrations_dir / s.file_name;
        if (auto why = program_problem(path))
            throw ConfigError(fmt::format("{}: [hooks] migrations: {} {}", config.where("[hooks] migrations"),
                                          path.string(), *why));
    }
}

}  // namespace bartl
