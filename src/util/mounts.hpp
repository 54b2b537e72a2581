// The mount table as the kernel reports it (/proc/self/mountinfo, proc(5)).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace bartl {

/// One line of /proc/self/mountinfo.
struct MountEntry {
    std::string mount_point;  ///< absolute, octal escapes (\040) decoded
    std::string device;       ///< "MAJOR:MINOR" of the mounted filesystem
    std::string fs_type;      ///< "ext4", "tmpfs", ...
    std::string root = "/";   ///< the directory of the filesystem mounted here ("/mt" for a bind mount of a subdirectory)
};

/// Parses mountinfo text (proc(5) format). Lines that do not parse are skipped. Pure.
std::vector<MountEntry> parse_mountinfo(const std::string& text);

/// The current mount table of this process's mount namespace. Throws RuntimeError when
/// /proc/self/mountinfo cannot be read.
std::vector<MountEntry> read_mounts();

/// The mount that holds `path` (the entry with the longest mount point that is a prefix of
/// `path` by whole components; later entries win ties, as over-mounts do). `path` should be
/// canonical. std::nullopt only for an empty table.
std::optional<MountEntry> mount_of(const std::vector<MountEntry>& mounts, const std::filesystem::path& path);

/// Where the filesystem of `m` itself is mounted: `m`'s mount point when it mounts the
/// filesystem's root, else the mount point of the entry in `mounts` that does, when `m` is
/// a bind mount of that entry's subdirectory at the same path (ReadWritePaths= binds
/// "/mnt/disk/mt" onto itself: the disk is at "/mnt/disk"); "" when unknown. Pure.
std::string filesystem_mount_point(const std::vector<MountEntry>& mounts, const MountEntry& m);

/// A bind mount of a directory at another path (fstab(5) "bind": /srv/appdata at /var/lib/app).
struct BindMount {
    std::string mount_point;  ///< where it is bound: "/var/lib/app"
    std::string source;       ///< the directory bound there, as a path: "/srv/appdata"
    std::string device;       ///< "MAJOR:MINOR" of that directory's filesystem
    /// Where the mount that names `source` is (after effective_mount()): "/mnt/disk" for
    /// /mnt/disk/appdata on a disk there, "/" once that disk is not mounted and the bind shows
    /// the root filesystem's bare /mnt/disk/appdata. Unlike `device` (a number the kernel
    /// hands out at mount time, another after a reboot for NVMe, device-mapper, NFS or btrfs),
    /// it tells the two apart across reboots.
    std::string filesystem;
};

/// The mount `m` as the operator made it: a bind mount that only binds what its parent mount
/// already shows at that path onto itself (a unit's ReadWritePaths= in its sandbox) is
/// followed to that parent, and so on; `m` itself otherwise. Pure.
MountEntry effective_mount(const std::vector<MountEntry>& mounts, const MountEntry& m);

/// The bind mount of another directory that `m` is (after effective_mount()): its mount point,
/// the bound directory as a path (through the mount of its filesystem that shows its nearest
/// ancestor: the filesystem's root, or a btrfs subvolume such as "/" of /@rootfs) and device
/// (as mountinfo shows it: on btrfs not the st_dev of its files); std::nullopt for the root
/// of a filesystem, a directory bound onto itself, or a directory that cannot be named as a
/// path (no mount shows an ancestor of it: a container's bind of a host directory). Pure.
std::optional<BindMount> bind_mount_of(const std::vector<MountEntry>& mounts, const MountEntry& m);

/// The topmost mount at exactly `mount_point` (the last entry there: over-mounts come later);
/// std::nullopt when it is no mount point. Pure.
std::optional<MountEntry> mount_at(const std::vector<MountEntry>& mounts, const std::filesystem::path& mount_point);

/// True when `mount_point` is a mount point in `mounts`.
bool is_mount_point(const std::vector<MountEntry>& mounts, const std::filesystem::path& mount_point);

/// The size and room of the file system holding a path (statvfs(3)).
struct FileSystemSpace {
    std::uint64_t size = 0;       ///< bytes, f_blocks * f_frsize
    std::uint64_t available = 0;  ///< bytes an unprivileged writer may still use, f_bavail * f_frsize
    std::string mount_point;      ///< where it is mounted (filesystem_mount_point()); "" when unknown
};

/// The FileSystemSpace of the file system holding `path`; std::nullopt when statvfs(3) fails.
std::optional<FileSystemSpace> filesystem_space(const std::filesystem::path& path);

/// "the file system at /srv/big holds 6.5 MiB, 1.9 MiB of it free" for `space` (of `path`
/// when its mount point is unknown), for messages about a full disk.
std::string space_text(const FileSystemSpace& space, const std::filesystem::path& path);

}  // namespace bartl
