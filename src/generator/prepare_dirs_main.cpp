// bartl-prepare-dirs [--mode=OCTAL] [--group=NAME|GID | --group-of=USER] DIR...
//
// Run by the drop-ins bartl-generator(8) writes, as ExecStartPre=+ (full privileges, outside
// the sandbox): it creates the directories that the unit's ReadWritePaths=- must find when
// systemd sets up the sandbox of ExecStart=, which fails with 226/NAMESPACE for a directory
// that does not exist. Users and groups are looked up here, at start, not by the generator,
// which runs before the user database may be asked. Exit status: 0 done, 1 a directory could
// not be created, 64 usage, 78 the group or user does not exist.
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "config/userdb.hpp"
#include "core/error.hpp"
#include "generator/prepare.hpp"

namespace {

constexpr const char* usage_text =
    "usage: bartl-prepare-dirs [--mode=OCTAL] [--group=NAME|GID | --group-of=USER] DIR...\n";

std::optional<unsigned long> parse_number(std::string_view text, int base) {
    unsigned long v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return v;
}

/// The GID of group `name` (a name, or a number, as systemd's Group= takes it).
std::optional<gid_t> lookup_group(const std::string& name) {
    if (auto n = parse_number(name, 10)) return static_cast<gid_t>(*n);
    std::vector<char> buf;
    group g{};
    if (!bartl::lookup_entry([&](group* e, char* b, std::size_t n, group** out) {
            return ::getgrnam_r(name.c_str(), e, b, n, out);
        }, g, buf))
        return std::nullopt;
    return g.gr_gid;
}

/// The name of group `gid` for messages, else the number.
std::string group_name(gid_t gid) {
    std::vector<char> buf;
    group g{};
    return bartl::lookup_entry([&](group* e, char* b, std::size_t n, group** out) {
        return ::getgrgid_r(gid, e, b, n, out);
    }, g, buf) ? std::string(g.gr_name) : std::to_string(gid);
}

/// The primary GID of user `name` (a name, or a UID the user database knows).
std::optional<gid_t> lookup_primary_group(const std::string& name) {
    std::vector<char> buf;
    passwd pw{};
    bool found = bartl::lookup_entry([&](passwd* e, char* b, std::size_t n, passwd** out) {
        return ::getpwnam_r(name.c_str(), e, b, n, out);
    }, pw, buf);
    if (!found)
        if (const auto uid = parse_number(name, 10))
            found = bartl::lookup_entry([&](passwd* e, char* b, std::size_t n, passwd** out) {
                return ::getpwuid_r(uid_t(*uid), e, b, n, out);
            }, pw, buf);
    if (!found) return std::nullopt;
    return pw.pw_gid;
}

}  // namespace

int main(int argc, char** argv) {
    mode_t mode = 0755;
    std::string group;
    std::string group_of;
    std::vector<std::string> dirs;
    bool options = true;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (options && a == "--") {
            options = false;
        } else if (options && a.starts_with("--mode=")) {
            const auto m = parse_number(a.substr(7), 8);
            if (!m || *m > 07777) {
                std::fprintf(stderr, "bartl-prepare-dirs: --mode \"%s\" is not an octal mode\n%s",
                             std::string(a.substr(7)).c_str(), usage_text);
                return 64;
            }
            mode = static_cast<mode_t>(*m);
        } else if (options && a.starts_with("--group=")) {
            group = a.substr(8);
        } else if (options && a.starts_with("--group-of=")) {
            group_of = a.substr(11);
        } else if (options && a.starts_with("-")) {
            std::fprintf(stderr, "bartl-prepare-dirs: unknown option %s\n%s", argv[i], usage_text);
            return 64;
        } else {
            dirs.emplace_back(a);
        }
    }
    if (dirs.empty() || (!group.empty() && !group_of.empty())) {
        std::fputs(usage_text, stderr);
        return 64;
    }
    gid_t gid = 0;
    if (!group.empty()) {
        const auto g = lookup_group(group);
        if (!g) {
            std::fprintf(stderr, "bartl-prepare-dirs: group \"%s\" does not exist\n", group.c_str());
            return 78;
        }
        gid = *g;
    } else if (!group_of.empty()) {
        const auto g = lookup_primary_group(group_of);
        if (!g) {
            std::fprintf(stderr, "bartl-prepare-dirs: user \"%s\" does not exist\n", group_of.c_str());
            return 78;
        }
        gid = *g;
    }
    const std::string shown = group_name(gid);
    int status = 0;
    for (const auto& d : dirs) {
        try {
            for (const auto& made : bartl::create_missing_dir(d, mode, gid)) {
                const bool target = made == std::filesystem::path(d).lexically_normal();
                std::fprintf(stderr, "bartl-prepare-dirs: created %s (root:%s, %04o)\n", made.c_str(),
                             target ? shown.c_str() : "root", target ? unsigned(mode) : 0755u);
            }
        } catch (const std::exception& e) {
            std::fprintf(stderr, "bartl-prepare-dirs: %s\n", e.what());
            status = 1;
        }
    }
    return status;
}
