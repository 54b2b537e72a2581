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

TEST_CASE("mountinfo: where a bind-mounted subdirectory's filesystem itself is mounted", "[mounts]") {
    // Under the unit: the disk at /mnt/disk, and ReadWritePaths=/mnt/disk/mt binding that
    // subdirectory onto itself.
    const auto m = parse_mountinfo(
        "22 1 254:0 / / rw - ext4 /dev/vda rw\n"
        "40 22 8:17 / /mnt/disk rw - ext4 /dev/sdb1 rw\n"
        "41 40 8:17 /mt /mnt/disk/mt rw - ext4 /dev/sdb1 rw\n"
        "42 22 8:17 /other /srv/elsewhere rw - ext4 /dev/sdb1 rw\n"
        "43 22 8:33 /sub /srv/orphan rw - ext4 /dev/sdc1 rw\n");
    REQUIRE(m.size() == 5);
    CHECK(m[2].root == "/mt");
    CHECK(filesystem_mount_point(m, m[1]) == "/mnt/disk");
    CHECK(filesystem_mount_point(m, m[2]) == "/mnt/disk");
    CHECK(filesystem_mount_point(m, m[0]) == "/");
    // A bind mount from elsewhere, or of a filesystem whose root is mounted nowhere: unknown.
    CHECK(filesystem_mount_point(m, m[3]) == "");
    CHECK(filesystem_mount_point(m, m[4]) == "");
}

TEST_CASE("mountinfo: a unit's ReadWritePaths= binding is followed to the mount it re-binds", "[mounts]") {
    const auto m = parse_mountinfo(
        "22 1 254:0 / / rw - ext4 /dev/vda rw\n"
        // The operator's fstab bind of /srv/appdata at /var/lib/app ...
        "50 22 254:0 /srv/appdata /var/lib/app rw - ext4 /dev/vda rw\n"
        // ... and the unit's ReadWritePaths=/var/lib/app/data binding that onto itself.
        "51 50 254:0 /srv/appdata/data /var/lib/app/data rw - ext4 /dev/vda rw\n"
        // ReadWritePaths=/var/lib/notes of a directory of "/".
        "52 22 254:0 /var/lib/notes /var/lib/notes rw - ext4 /dev/vda rw\n"
        // A disk, and a directory of it bound onto itself.
        "40 22 8:17 / /mnt/disk rw - ext4 /dev/sdb1 rw\n"
        "41 40 8:17 /mt /mnt/disk/mt rw - ext4 /dev/sdb1 rw\n"
        // A directory of that disk bound elsewhere.
        "42 22 8:17 /appdata /srv/app rw - ext4 /dev/sdb1 rw\n"
        // A filesystem whose root is mounted nowhere (a btrfs subvolume).
        "43 22 0:44 /@home /home rw - btrfs /dev/sdc1 rw\n");
    REQUIRE(m.size() == 8);
    CHECK(effective_mount(m, m[2]).mount_point == "/var/lib/app");
    CHECK(effective_mount(m, m[1]).mount_point == "/var/lib/app");
    CHECK(effective_mount(m, m[3]).mount_point == "/");
    CHECK(effective_mount(m, m[5]).mount_point == "/mnt/disk");
    CHECK(effective_mount(m, m[0]).mount_point == "/");
    CHECK(effective_mount(m, m[7]).mount_point == "/home");

    const auto app = bind_mount_of(m, m[2]);
    REQUIRE(app);
    CHECK(app->mount_point == "/var/lib/app");
    CHECK(app->source == "/srv/appdata");
    CHECK(app->device == "254:0");
    const auto elsewhere = bind_mount_of(m, m[6]);
    REQUIRE(elsewhere);
    CHECK(elsewhere->source == "/mnt/disk/appdata");
    CHECK(elsewhere->mount_point == "/srv/app");
    // Not binds of another directory: a filesystem's root, a directory bound onto itself,
    // one that cannot be named.
    CHECK_FALSE(bind_mount_of(m, m[0]));
    CHECK_FALSE(bind_mount_of(m, m[3]));
    CHECK_FALSE(bind_mount_of(m, m[4]));
    CHECK_FALSE(bind_mount_of(m, m[5]));
    CHECK_FALSE(bind_mount_of(m, m[7]));

    CHECK(mount_at(m, "/var/lib/app/")->root == "/srv/appdata");
    CHECK_FALSE(mount_at(m, "/var/lib"));
}

TEST_CASE("mountinfo: the topmost of two mounts at one point", "[mounts]") {
    const auto m = parse_mountinfo(
        "22 1 254:0 / / rw - ext4 /dev/vda rw\n"
        "50 22 254:0 /srv/appdata /var/lib/app rw - ext4 /dev/vda rw\n"
        "51 50 0:30 / /var/lib/app rw - tmpfs tmpfs rw\n");
    CHECK(mount_at(m, "/var/lib/app")->device == "0:30");
    CHECK_FALSE(bind_mount_of(m, *mount_at(m, "/var/lib/app")));
}
