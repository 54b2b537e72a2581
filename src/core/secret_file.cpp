#include "core/secret_file.hpp"

#include <sys/stat.h>

#include <fmt/format.h>

namespace bartl {
namespace {

/// "group", "others" or "group and others": whom `mode` grants `group_bit` or `other_bit`.
std::string who(mode_t mode, mode_t group_bit, mode_t other_bit) {
    const bool g = mode & group_bit, o = mode & other_bit;
    return g && o ? "group and others" : g ? "group" : "others";
}

}  // namespace

std::optional<SecretFileProblem> secret_file_problem(mode_t mode, uid_t owner, uid_t self, bool credential) {
    if (!S_ISREG(mode)) return std::nullopt;
    const unsigned perm = mode & 07777;
    if (mode & (S_IWGRP | S_IWOTH))
        // Whoever could write it may have put their own secret in: fixing the mode is not enough.
        return SecretFileProblem{true, fmt::format("mode {:04o}: anyone {} could have replaced it: run chmod g-w,o-w "
                                                   "FILE and check its content",
                                                   perm, mode & S_IWOTH ? "on this host" : "in the group")};
    if (owner != 0 && owner != self)
        return SecretFileProblem{false, fmt::format("owned by uid {}, neither root nor bartld's uid {}: that user can "
                                                    "read it and change its mode (run chown {} FILE)",
                                                    owner, self, self)};
    const mode_t readers = credential ? mode_t(S_IROTH) : mode_t(S_IRGRP | S_IROTH);
    if (mode & readers)
        return SecretFileProblem{false, fmt::format("mode {:04o}: {} can read it (run chmod {} FILE)", perm,
                                                    credential ? "others" : who(mode, S_IRGRP, S_IROTH),
                                                    credential ? "o-r" : "600")};
    return std::nullopt;
}

}  // namespace bartl
