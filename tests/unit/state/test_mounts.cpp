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
    CHECK(app->filesystem == "/");
    const auto elsewhere = bind_mount_of(m, m[6]);
    REQUIRE(elsewhere);
    CHECK(elsewhere->source == "/mnt/disk/appdata");
    CHECK(elsewhere->mount_point == "/srv/app");
    CHECK(elsewhere->filesystem == "/mnt/disk");
    // That disk not mounted, fstab's bind shows the root filesystem's bare /mnt/disk/appdata:
    // the same path, through another mount.
    const auto bare = parse_mountinfo("22 1 254:0 / / rw - ext4 /dev/vda rw\n"
                                      "42 22 254:0 /mnt/disk/appdata /srv/app rw - ext4 /dev/vda rw\n");
    const auto underneath = bind_mount_of(bare, bare[1]);
    REQUIRE(underneath);
    CHECK(underneath->source == "/mnt/disk/appdata");
    CHECK(underneath->filesystem == "/");
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

TEST_CASE("mountinfo: a bind on btrfs whose top level is mounted nowhere is named through a subvolume", "[mounts]") {
    // The Debian installer's btrfs layout: "/" is the subvolume @rootfs, /home is @home, and
    // no mount shows the top level (subvolid 5). fstab binds /srv/appdata at /var/lib/app.
    // The bind was not recorded at all: without it /var/lib/app is a bare directory of "/",
    // the very filesystem of /srv/appdata, and the state was restored underneath it.
    const auto m = parse_mountinfo(
        "26 1 0:25 /@rootfs / rw,relatime shared:1 - btrfs /dev/vda2 rw,space_cache=v2,subvolid=256,subvol=/@rootfs\n"
        "27 26 0:25 /@home /home rw,relatime shared:2 - btrfs /dev/vda2 rw,space_cache=v2,subvolid=257,subvol=/@home\n"
        "60 26 0:25 /@rootfs/srv/appdata /var/lib/app rw,relatime shared:1 - btrfs /dev/vda2 rw,subvolid=256\n"
        // The unit's ReadWritePaths=/var/lib/app/data, and its PrivateTmp=.
        "70 60 0:25 /@rootfs/srv/appdata/data /var/lib/app/data rw,relatime - btrfs /dev/vda2 rw,subvolid=256\n"
        "71 26 0:25 /@rootfs/tmp/systemd-private-0f1e-bartld@notes.service-Ab12/tmp /tmp rw - btrfs /dev/vda2 rw\n"
        // A subvolume mounted at /srv/media, bound at /var/lib/media.
        "28 26 0:25 /@media /srv/media rw,relatime shared:3 - btrfs /dev/vda2 rw,subvolid=258,subvol=/@media\n"
        "61 26 0:25 /@media /var/lib/media rw,relatime shared:3 - btrfs /dev/vda2 rw,subvolid=258,subvol=/@media\n");
    REQUIRE(m.size() == 7);
    const auto app = bind_mount_of(m, m[3]);
    REQUIRE(app);
    CHECK(app->mount_point == "/var/lib/app");
    CHECK(app->source == "/srv/appdata");
    CHECK(app->device == "0:25");
    CHECK(app->filesystem == "/");
    const auto tmp = bind_mount_of(m, m[4]);
    REQUIRE(tmp);
    CHECK(tmp->source == "/tmp/systemd-private-0f1e-bartld@notes.service-Ab12/tmp");
    const auto media = bind_mount_of(m, m[6]);
    REQUIRE(media);
    CHECK(media->source == "/srv/media");
    CHECK(media->filesystem == "/srv/media");
    // Subvolumes mounted as such, and a directory of "/" bound onto itself, are no binds.
    CHECK_FALSE(bind_mount_of(m, m[0]));
    CHECK_FALSE(bind_mount_of(m, m[1]));
    CHECK_FALSE(bind_mount_of(m, m[5]));
    CHECK_FALSE(bind_mount_of(m, MountEntry{"/var/lib/notes", "0:25", "btrfs", "/@rootfs/var/lib/notes"}));
}

TEST_CASE("mountinfo: container roots name no bind of a directory they cannot see", "[mounts]") {
    // systemd-nspawn of a directory tree, --bind=/srv/appdata:/var/lib/app: the host's "/"
    // is not in the container's table.
    const auto nspawn = parse_mountinfo(
        "380 300 254:0 /var/lib/machines/app / rw,relatime shared:200 master:1 - ext4 /dev/vda1 rw\n"
        "390 380 254:0 /srv/appdata /var/lib/app rw,relatime shared:201 master:1 - ext4 /dev/vda1 rw\n"
        "391 380 0:60 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw\n");
    CHECK_FALSE(bind_mount_of(nspawn, nspawn[0]));
    CHECK_FALSE(bind_mount_of(nspawn, nspawn[1]));
    // A docker/podman volume over an overlayfs root.
    const auto docker = parse_mountinfo(
        "600 500 0:70 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A,upperdir=/u,workdir=/w\n"
        "610 600 254:0 /var/lib/docker/containers/c0ffee/hosts /etc/hosts rw,relatime - ext4 /dev/vda1 rw\n"
        "611 600 254:0 /srv/appdata /var/lib/app rw,relatime - ext4 /dev/vda1 rw\n");
    CHECK_FALSE(bind_mount_of(docker, docker[0]));
    CHECK_FALSE(bind_mount_of(docker, docker[2]));
}
