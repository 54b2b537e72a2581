#include "ops/config_check.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "core/error.hpp"
#include "ops/migrations_dir.hpp"
#include "ops/signing.hpp"
#include "state/database.hpp"

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
    load_trusted_keys(config);
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
