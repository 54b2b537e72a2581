// Permissions of secret files (core/secret_file.hpp): every mode, owner and kind.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "core/secret_file.hpp"

using namespace bartl;

namespace {
constexpr uid_t kSelf = 998, kOther = 1000;
}

TEST_CASE("secret files: private modes pass, for root and bartld's own user", "[secret]") {
    for (const bool credential : {false, true})
        for (const uid_t owner : {uid_t(0), kSelf})
            for (const mode_t perm : {0400, 0600, 0700, 0500, 0000}) {
                INFO(perm << " owner " << owner << " credential " << credential);
                CHECK_FALSE(secret_file_problem(S_IFREG | perm, owner, kSelf, credential));
            }
    // systemd's credentials: 0440 root with the service user in the group, or an ACL.
    CHECK_FALSE(secret_file_problem(S_IFREG | 0440, 0, kSelf, true));
    CHECK_FALSE(secret_file_problem(S_IFREG | 0440, kSelf, kSelf, true));
}

TEST_CASE("secret files: the messages name the mode and the chmod", "[secret]") {
    struct Case {
        mode_t perm;
        uid_t owner;
        bool credential, error;
        const char* message;
    };
    const Case cases[] = {
        {0644, kSelf, false, false, "mode 0644: group and others can read it (run chmod 600 FILE)"},
        {0640, 0, false, false, "mode 0640: group can read it (run chmod 600 FILE)"},
        {0604, 0, false, false, "mode 0604: others can read it (run chmod 600 FILE)"},
        {0444, 0, true, false, "mode 0444: others can read it (run chmod o-r FILE)"},
        {0620, kSelf, false, true,
         "mode 0620: anyone in the group could have replaced it: run chmod g-w,o-w FILE and check its content"},
        {0602, kSelf, false, true,
         "mode 0602: anyone on this host could have replaced it: run chmod g-w,o-w FILE and check its content"},
        {0666, kSelf, true, true,
         "mode 0666: anyone on this host could have replaced it: run chmod g-w,o-w FILE and check its content"},
        {0600, kOther, false, false,
         "owned by uid 1000, neither root nor bartld's uid 998: that user can read it and change its mode (run "
         "chown 998 FILE)"},
        // The set-id and sticky bits are shown, not judged.
        {04644, 0, false, false, "mode 4644: group and others can read it (run chmod 600 FILE)"},
    };
    for (const auto& c : cases) {
        INFO(c.message);
        const auto p = secret_file_problem(S_IFREG | c.perm, c.owner, kSelf, c.credential);
        REQUIRE(p);
        CHECK(p->error == c.error);
        CHECK(p->message == c.message);
    }
}

TEST_CASE("secret files: every mode follows the rules", "[secret]") {
    for (const bool credential : {false, true})
        for (const uid_t owner : {uid_t(0), kSelf, kOther})
            for (mode_t perm = 0; perm <= 0777; ++perm) {
                INFO(perm << " owner " << owner << " credential " << credential);
                const auto p = secret_file_problem(S_IFREG | perm, owner, kSelf, credential);
                const bool writable = perm & 022;
                const bool readable = credential ? (perm & 004) : (perm & 044);
                if (writable) {
                    REQUIRE(p);
                    CHECK(p->error);
                } else if (owner == kOther || readable) {
                    REQUIRE(p);
                    CHECK_FALSE(p->error);
                } else {
                    CHECK_FALSE(p);
                }
                // The owner itself is never the problem; root runs as 0 and owns everything it may.
                CHECK(secret_file_problem(S_IFREG | perm, owner, owner, credential).has_value() == (writable || readable));
            }
}

TEST_CASE("secret files: other file types are left to whoever reads them", "[secret]") {
    for (const mode_t type : {S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK})
        CHECK_FALSE(secret_file_problem(type | 0666, kOther, kSelf, false));
}
