// [app] user and group at run time (see user.hpp).
#include "app/user.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl {
namespace {

/// Whether capability `cap` is in our effective set (capget(2); libcap is not needed for one bit).
bool have_capability(int cap) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &header, data) != 0)
        return false;
    return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

bool groups_differ(const std::vector<gid_t>& wanted) {
    const int n = ::getgroups(0, nullptr);
    std::vector<gid_t> ours(std::size_t(n > 0 ? n : 0));
    if (n > 0 && ::getgroups(n, ours.data()) != n)
        return true;
    auto a = ours, b = wanted;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    a.erase(std::unique(a.begin(), a.end()), a.end());
    b.erase(std::unique(b.begin(), b.end()), b.end());
    return a != b;
}

}  // namespace

std::optional<Credentials> app_credentials(const Config& config) {
    if (!config.run_as)
        return std::nullopt;
    const RunAs& r = *config.run_as;
    // An unprivileged bartld running as the app's own user cannot call setgroups(2); the app
    // then keeps bartld's groups, as it would when started by that user directly.
    if (r.uid == ::geteuid() && r.gid == ::getegid() && !have_capability(CAP_SETGID))
        return std::nullopt;
    return Credentials{r.uid, r.gid, r.groups, r.user};
}

std::map<std::string, std::string> app_user_env(const Config& config) {
    if (!config.run_as)
        return {};
    return {{"HOME", config.run_as->home}, {"USER", config.run_as->user}, {"LOGNAME", config.run_as->user}};
}

void check_user_switch(const Config& config) {
    if (!config.run_as)
        return;
    const RunAs& r = *config.run_as;
    const bool switch_uid = r.uid != ::geteuid();
    const bool switch_gid = r.gid != ::getegid() || (switch_uid && groups_differ(r.groups));
    std::vector<std::string> missing;
    if (switch_uid && !have_capability(CAP_SETUID))
        missing.push_back("CAP_SETUID");
    if (switch_gid && !have_capability(CAP_SETGID))
        missing.push_back("CAP_SETGID");
    if (missing.empty())
        return;
    throw ConfigError(fmt::format(
        "{}: [app] user \"{}\" (uid {}, group {} gid {}): bartld runs as uid {} gid {} without {} and cannot start "
        "the app, its hooks and migration scripts as that user; run bartld as root (the shipped units do) or "
        "remove [app] user",
        r.where, r.user, r.uid, r.group, r.gid, ::geteuid(), ::getegid(), fmt::join(missing, " and ")));
}

std::vector<std::filesystem::path> missing_parents(const Config& config) {
    std::vector<std::filesystem::path> out;
    for (const auto& p : config.state_paths) {
        std::vector<std::filesystem::path> here;
        std::error_code ec;
        for (auto d = p.parent_path(); !d.empty() && d != d.root_path() && !std::filesystem::exists(d, ec);
             d = d.parent_path())
            here.insert(here.begin(), d);
        for (auto& d : here)
            if (std::find(out.begin(), out.end(), d) == out.end())
                out.push_back(std::move(d));
    }
    return out;
}

void give_to_app_user(const Config& config, const std::vector<std::filesystem::path>& staging,
                      const std::vector<std::filesystem::path>& new_parents) {
    if (!config.run_as)
        return;
    const RunAs& r = *config.run_as;
    for (const auto& d : new_parents)
        if (::chmod(d.c_str(), 0755) != 0)
            throw RuntimeError(fmt::format("cannot open {} to user {} (chmod 0755): {}", d.string(), r.user,
                                           std::strerror(errno)));
    for (const auto& d : staging)
        if (::lchown(d.c_str(), r.uid, r.gid) != 0)
            throw RuntimeError(fmt::format("cannot give {} to user {} (uid {}, gid {}): {}", d.string(), r.user, r.uid,
                                           r.gid, std::strerror(errno)));
}

}  // namespace bartl
