// bartl-generator NORMAL_DIR [EARLY_DIR LATE_DIR]: a systemd generator (systemd.generator(7)),
// run by systemd at boot and at every daemon-reload. For each /etc/bartl/NAME.toml it writes
// NORMAL_DIR/bartld@NAME.service.d/50-bartl-generator.conf (and, for bartl.toml, the same for
// bartld.service): what bartld needs to write under the unit's sandbox (bartl-generator(8)).
//
// It must never hold up or fail the boot: it runs before local file systems are mounted, so
// it reads only the configuration and never looks at the paths it names; a configuration it
// cannot use is logged to the kernel log and skipped (bartld reports the same error, exit 78,
// when the unit starts). Exit status 1 only when NORMAL_DIR cannot be written.
//
// For tests: $BARTL_GENERATOR_CONFIG_DIR replaces /etc/bartl, $BARTL_GENERATOR_LOG names a
// file that receives the kernel log lines instead of /dev/kmsg.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

#include "bartl_build_config.h"
#include "config/config.hpp"
#include "core/error.hpp"
#include "generator/dropin.hpp"

namespace {

namespace fs = std::filesystem;
using namespace bartl;

constexpr const char* dropin_name = "50-bartl-generator.conf";

/// The kernel log (/dev/kmsg), where messages of generators belong: the journal is not
/// running yet at boot and imports the kernel log later. A container has no kernel log; there
/// the journal's socket takes the record when journald runs (at daemon-reload), else stderr.
class KernelLog {
public:
    KernelLog() {
        const char* file = std::getenv("BARTL_GENERATOR_LOG");
        fd_ = file && *file ? ::open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)
                            : ::open("/dev/kmsg", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    }
    ~KernelLog() {
        if (fd_ >= 0) ::close(fd_);
    }
    KernelLog(const KernelLog&) = delete;
    KernelLog& operator=(const KernelLog&) = delete;

    /// One record: "<PRIORITY>bartl-generator[PID]: TEXT" (the syslog(3) form journald parses
    /// from the kernel log), TEXT on one line and cut to fit a kernel log record.
    void write(int priority, std::string_view text) const {
        std::string message;
        for (const char c : text.substr(0, 900)) message += c == '\n' ? ' ' : c;
        if (fd_ < 0 && to_journal(priority, message)) return;
        const std::string line = fmt::format("<{}>bartl-generator[{}]: {}\n", priority, ::getpid(), message);
        // One write(2) per record: /dev/kmsg takes each write as one message.
        [[maybe_unused]] const auto n = ::write(fd_ >= 0 ? fd_ : STDERR_FILENO, line.data(), line.size());
    }
    void error(std::string_view text) const { write(3, text); }
    void warning(std::string_view text) const { write(4, text); }

private:
    /// One datagram of the journal's native protocol (systemd-journald.service(8)), sent
    /// without blocking: a generator must never wait for another process.
    static bool to_journal(int priority, const std::string& message) {
        const int s = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s < 0) return false;
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        constexpr std::string_view path = "/run/systemd/journal/socket";
        path.copy(addr.sun_path, path.size());
        const std::string record = fmt::format("PRIORITY={}\nSYSLOG_IDENTIFIER=bartl-generator\nSYSLOG_PID={}\n"
                                               "MESSAGE={}\n",
                                               priority, ::getpid(), message);
        const bool sent = ::sendto(s, record.data(), record.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
                                   sizeof addr) == static_cast<ssize_t>(record.size());
        ::close(s);
        return sent;
    }

    int fd_ = -1;
};

/// NORMAL_DIR cannot be written: the one failure the generator reports with its exit status.
class OutputError : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
};

/// Writes `text` as NORMAL_DIR/UNIT.d/50-bartl-generator.conf through a temporary file and
/// rename(2), so systemd never reads half a drop-in. No fsync: NORMAL_DIR is a tmpfs that
/// systemd empties before every run.
void write_dropin(const fs::path& normal_dir, const std::string& unit, const std::string& text) {
    const fs::path dir = normal_dir / (unit + ".d");
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
        throw OutputError(fmt::format("cannot create {}: {}", dir.string(), std::strerror(errno)));
    const fs::path final_path = dir / dropin_name;
    const fs::path tmp = dir / (std::string(".") + dropin_name + ".tmp");
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) throw OutputError(fmt::format("cannot write {}: {}", tmp.string(), std::strerror(errno)));
    std::size_t done = 0;
    while (done < text.size()) {
        const auto n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int err = n < 0 ? errno : ENOSPC;
            ::close(fd);
            ::unlink(tmp.c_str());
            throw OutputError(fmt::format("cannot write {}: {}", tmp.string(), std::strerror(err)));
        }
        done += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0 || ::rename(tmp.c_str(), final_path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw OutputError(fmt::format("cannot write {}: {}", final_path.string(), std::strerror(err)));
    }
}

/// The *.toml files of `dir` that are (or lead to) regular files, sorted; none when `dir`
/// does not exist.
std::vector<fs::path> config_files(const fs::path& dir, const KernelLog& log) {
    std::vector<fs::path> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
        if (errno != ENOENT) log.error(fmt::format("{}: cannot read: {}", dir.string(), std::strerror(errno)));
        return out;
    }
    while (const dirent* e = ::readdir(d)) {
        const std::string_view name = e->d_name;
        if (name.starts_with('.') || !name.ends_with(".toml")) continue;  // editor and dpkg leftovers too
        struct stat st {};
        if (::fstatat(::dirfd(d), e->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode)) continue;
        out.push_back(dir / e->d_name);
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

/// Writes the drop-ins of one configuration file; logs and skips it when it cannot be used.
void generate(const fs::path& file, const fs::path& normal_dir, const KernelLog& log) {
    const std::string instance = file.stem().string();
    struct Job {
        UnitTarget target;
        std::string instance;  ///< --instance of the unit; "" = [app] name (bartld.service)
    };
    std::vector<Job> jobs{{{fmt::format("bartld@{}.service", instance), fs::path("/var/lib/bartl") / instance},
                           instance}};
    // bartld.service runs --config /etc/bartl/bartl.toml with StateDirectory=bartl.
    if (instance == "bartl") jobs.push_back({{"bartld.service", "/var/lib/bartl"}, ""});

    std::vector<std::pair<std::string, std::string>> dropins;
    try {
        for (const auto& job : jobs) {
            // The user database is not there to ask yet (NSS modules may need services that
            // wait for this very generator): bartl-prepare-dirs resolves [app] user at start.
            const Config config = load_config(file, job.instance, {.resolve_users = false});
            const UnitNeeds needs = unit_needs(config, job.target);
            for (const auto& w : needs.warnings) log.warning(fmt::format("{} ({})", w, job.target.unit));
            dropins.emplace_back(job.target.unit,
                                 render_dropin(needs, file, BARTL_LIBEXECDIR "/bartl/bartl-prepare-dirs"));
        }
    } catch (const std::exception& e) {
        // ConfigError names FILE:LINE:COLUMN already; an invalid instance name does not.
        const std::string what = e.what();
        const std::string where = what.starts_with(file.string() + ":") ? "" : file.string() + ": ";
        log.error(fmt::format("{}{} ({} gets no drop-in)", where, what, jobs.front().target.unit));
        return;
    }
    for (const auto& [unit, text] : dropins) write_dropin(normal_dir, unit, text);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2 && argc != 4) {
        std::fputs("usage: bartl-generator NORMAL_DIR [EARLY_DIR LATE_DIR] (run by systemd, see bartl-generator(8))\n",
                   stderr);
        return 64;
    }
    const KernelLog log;
    // The initrd has neither /etc/bartl nor bartld's units.
    if (const char* initrd = std::getenv("SYSTEMD_IN_INITRD"); initrd && std::string_view(initrd) == "1") return 0;
    try {
        const fs::path normal_dir = argv[1];
        struct stat st {};
        if (::stat(normal_dir.c_str(), &st) != 0)
            throw OutputError(fmt::format("{}: {}", normal_dir.string(), std::strerror(errno)));
        if (!S_ISDIR(st.st_mode)) throw OutputError(fmt::format("{}: not a directory", normal_dir.string()));
        const char* dir = std::getenv("BARTL_GENERATOR_CONFIG_DIR");
        const fs::path config_dir = dir && *dir ? fs::path(dir) : fs::path(BARTL_SYSCONFDIR) / "bartl";
        for (const auto& file : config_files(config_dir, log)) generate(file, normal_dir, log);
        return 0;
    } catch (const OutputError& e) {
        log.error(e.what());
        return 1;
    } catch (const std::exception& e) {
        log.error(e.what());
        return 0;  // never fail the boot over something that is not the output directory
    }
}
