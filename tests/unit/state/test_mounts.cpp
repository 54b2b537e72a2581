// /proc/self/mountinfo parsing (util/mounts.hpp).
#include <catch2/catch.hpp>

#include "util/mounts.hpp"

using namespace bartl;

TEST_CASE("mountinfo: mount points, devices, escapes and the longest prefix", "[mounts]") {
    const std::string text =
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "30 22 0:25 / /var/lib rw,nosuid shared:5 - tmpfs tmpfs rw,size=64k\n"
        "31 30 8:17 / /var/lib/my\\040disk rw master:2 - xfs /dev/sdb1 rw\n"
        "garbage line\n"
        "32 22 0:26 / /var/lib2 rw - tmpfs tmpfs rw\n";
    const auto m = parse_mountinfo(text);
    REQUIRE(m.size() == 4);
    CHECK(m[2].mount_point == "/var/lib/my disk");
    CHECK(m[2].device == "8:17");
    CHECK(m[2].fs_type == "xfs");
    CHECK(mount_of(m, "/var/lib/my disk/notes")->mount_point == "/var/lib/my disk");
    CHECK(mount_of(m, "/var/lib/notes")->mount_point == "/var/lib");
    CHECK(mount_of(m, "/var/lib2/x")->mount_point == "/var/lib2");  // whole components
    CHECK(mount_of(m, "/srv")->mount_point == "/");
    CHECK(is_mount_point(m, "/var/lib"));
    CHECK(is_mount_point(m, "/var/lib/"));
    CHECK_FALSE(is_mount_point(m, "/var"));
    CHECK_FALSE(read_mounts().empty());
}
