#include "core/state_path_rules.hpp"

#include <array>
#include <string_view>

namespace bartl {

std::optional<std::filesystem::path> shared_parent_of_state_path(const std::filesystem::path& state_path) {
    using namespace std::string_view_literals;
    static constexpr std::array shared{"/"sv,        "/var"sv,      "/var/lib"sv, "/var/local"sv, "/var/opt"sv,
                                       "/var/cache"sv, "/var/spool"sv, "/var/tmp"sv, "/srv"sv,      "/opt"sv,
                                       "/home"sv,    "/mnt"sv,      "/media"sv,   "/tmp"sv,       "/usr"sv,
                                       "/usr/local"sv, "/etc"sv,     "/data"sv,    "/var/log"sv,   "/var/backups"sv,
                                       "/var/mail"sv, "/var/www"sv,  "/run"sv};
    auto p = state_path.lexically_normal();
    if (!p.has_filename()) p = p.parent_path();  // "/var/lib/notes/"
    const auto parent = p.parent_path();
    for (const auto s : shared)
        if (parent == std::filesystem::path(s)) return parent;
    return std::nullopt;
}

}  // namespace bartl
