#include "state/directory.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/state_filesystem.hpp"
#include "util/fs.hpp"
#include "util/mounts.hpp"

namespace bartl {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

bool no_user_xattrs(int err) { return err == ENOTSUP || err == EOPNOTSUPP; }

std::string device_text(dev_t dev) { return fmt::format("{}:{}", major(dev), minor(dev)); }

/// st_dev of `path` or of its nearest ancestor that exists; "" when none can be inspected.
std::string nearest_existing_device(std::filesystem::path path) {
    for (;;) {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) return device_text(st.st_dev);
        if (!path.has_relative_path()) return "";
        path = path.parent_path();
    }
}

/// Sets user.bartl.state_id; false when the filesystem has no user xattrs.
bool set_id(const std::filesystem::path& dir, const std::string& id) {
    if (::lsetxattr(dir.c_str(), kStateIdXattr, id.data(), id.size(), 0) == 0) return true;
    if (no_user_xattrs(errno)) return false;
    throw RuntimeError(fmt::format("cannot set {} on {}: {}", kStateIdXattr, dir.string(), errno_text(errno)));
}

}  // namespace

const char* finding_name(ComponentFinding f) noexcept {
    switch (f) {
    case ComponentFinding::ours: return "ours";
    case ComponentFinding::lost: return "lost";
    case ComponentFinding::not_mounted: return "not mounted";
    case ComponentFinding::foreign: return "foreign";
    case ComponentFinding::fresh: return "new";
    }
    return "unknown";
}

std::optional<std::string> read_state_id_xattr(const std::filesystem::path& dir) {
    char buf[256];
    ssize_t n = ::lgetxattr(dir.c_str(), kStateIdXattr, buf, sizeof buf);
    if (n >= 0) return std::string(buf, static_cast<std::size_t>(n));
    if (errno == ENODATA) return std::string();
    if (no_user_xattrs(errno)) return std::nullopt;
    if (errno == ERANGE) return std::string("(oversized value)");
    throw RuntimeError(fmt::format("cannot read {} of {}: {}", kStateIdXattr, dir.string(), errno_text(errno)));
}

DirectoryComponent::DirectoryComponent(std::filesystem::path path) : path_(std::move(path)), name_(path_.string()) {}

bool DirectoryComponent::holds_data() const { return !fs::is_missing_or_empty(path_); }

ComponentObservation DirectoryComponent::observe(const ComponentRecord* recorded, const std::string& state_id) const {
    ComponentObservation o;
    struct stat st {};
    const bool exists = ::lstat(path_.c_str(), &st) == 0;
    if (!exists && errno != ENOENT)
        throw RuntimeError(fmt::format("cannot inspect state path {}: {}", name_, errno_text(errno)));
    if (exists && !S_ISDIR(st.st_mode))
        throw ConfigError(fmt::format("state path {} exists and is not a directory{}", name_,
                                      S_ISLNK(st.st_mode) ? " (it is a symlink: declare the directory it points to)"
                                                          : ""));
    if (exists) {
        const auto x = read_state_id_xattr(path_);
        if (x) {
            o.carried_id = *x;
        } else if (recorded && recorded->binding == "inode" && recorded->inode == st.st_ino &&
                   recorded->device == device_text(st.st_dev)) {
            o.carried_id = state_id;  // the fallback's proof: the very directory bound at commit
        }
    }
    if (recorded && recorded->binding.empty() && exists) {
        // A marker of format 1 (before state IDs): the directory existing was the proof.
        o.finding = ComponentFinding::ours;
        o.detail = fmt::format("{}: present (marker without state IDs; bound at this start)", name_);
        return o;
    }
    if (!state_id.empty() && o.carried_id == state_id) {
        o.finding = ComponentFinding::ours;
        o.detail = fmt::format("{}: carries state ID {}", name_, state_id);
        return o;
    }
    const std::string carried = o.carried_id.empty() ? "no state ID" : "state ID " + o.carried_id;
    if (exists && holds_data()) {
        o.finding = ComponentFinding::foreign;
        o.detail = state_id.empty()
                       ? fmt::format("{} holds data ({}) and there is no marker", name_, carried)
                       : fmt::format("{} holds data with {}, not the marker's state ID {}", name_, carried, state_id);
        return o;
    }
    if (!recorded) {
        o.finding = ComponentFinding::fresh;
        o.detail = fmt::format("{}: {}", name_, exists ? "empty" : "missing");
        return o;
    }
    const auto mounts = read_mounts();
    FilesystemView now;
    now.recorded_mount_point_mounted = !recorded->mount_point.empty() && is_mount_point(mounts, recorded->mount_point);
    now.ancestor_device = nearest_existing_device(path_);
    if (const auto holding = mount_of(mounts, path_.parent_path())) {
        now.holding_mount_point = holding->mount_point;
        now.holding_device = holding->device;
    }
    if (const auto root = mount_of(mounts, "/")) now.root_device = root->device;
    if (!recorded->bind_source.empty()) {
        BindView bind;
        if (const auto at = mount_at(mounts, recorded->bind_mount_point)) {
            const auto e = effective_mount(mounts, *at);
            if (e.mount_point == recorded->bind_mount_point) {
                bind.mounted = true;
                bind.device = e.device;
                if (const auto b = bind_mount_of(mounts, e)) {
                    bind.source = b->source;
                    bind.filesystem = b->filesystem;
                }
            }
        }
        const auto presence = judge_bind_mount(recorded->bind_source, recorded->bind_filesystem, bind);
        if (presence == FilesystemPresence::not_mounted) {
            o.finding = ComponentFinding::not_mounted;
            o.detail = bind.mounted
                           ? fmt::format("{} is {} and the filesystem of {} that held it (mounted at {}) is not "
                                         "mounted under its bind mount at {}",
                                         name_, exists ? "empty" : "missing", recorded->bind_source,
                                         recorded->bind_filesystem, recorded->bind_mount_point)
                           : fmt::format("{} is {} and the bind mount that held it ({} at {}) is not mounted", name_,
                                         exists ? "empty" : "missing", recorded->bind_source,
                                         recorded->bind_mount_point);
            return o;
        }
        o.finding = ComponentFinding::lost;
        o.detail = fmt::format("{} is {}{} ({}): state lost", name_, exists ? "empty" : "missing",
                               presence == FilesystemPresence::replaced
                                   ? fmt::format(" in {} now bound at {} (was {})",
                                                 bind.source.empty() ? "a filesystem (" + bind.device + ")"
                                                                     : bind.source,
                                                 recorded->bind_mount_point, recorded->bind_source)
                                   : "",
                               carried);
        return o;
    }
    const auto presence = judge_state_filesystem(recorded->mount_point, recorded->device, now);
    if (presence == FilesystemPresence::not_mounted) {
        o.finding = ComponentFinding::not_mounted;
        // The disk's own mount point, not the unit's bind mount of the state's directory on it.
        o.detail = fmt::format("{} is {} and the filesystem that held it ({} on {}) is not mounted", name_,
                               exists ? "empty" : "missing", recorded->device,
                               recorded->filesystem_mount_point.empty() ? recorded->mount_point
                                                                        : recorded->filesystem_mount_point);
        return o;
    }
    o.finding = ComponentFinding::lost;
    o.detail = fmt::format("{} is {}{} ({}): state lost", name_, exists ? "empty" : "missing",
                           presence == FilesystemPresence::replaced
                               ? fmt::format(" on a new filesystem at {} (was {}, now {})", recorded->mount_point,
                                             recorded->device, now.holding_device)
                               : "",
                           carried);
    return o;
}

void DirectoryComponent::check_target() const {
    struct stat st {};
    if (::lstat(path_.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        throw RuntimeError(fmt::format("cannot inspect state path {}: {}", name_, errno_text(errno)));
    }
    if (S_ISLNK(st.st_mode))
        throw ConfigError(fmt::format(
            "state path {} is a symlink: bartl renames staged state into place, which would replace the link; "
            "declare the directory it points to in [state] paths",
            name_));
    if (!S_ISDIR(st.st_mode)) throw ConfigError(fmt::format("state path {} exists and is not a directory", name_));
    struct stat parent {};
    if (::stat(path_.parent_path().c_str(), &parent) == 0 && parent.st_dev != st.st_dev)
        throw ConfigError(fmt::format(
            "state path {} is a mount point: bartl stages state beside it and renames it into place, which "
            "cannot replace a mount point; declare a directory inside it (e.g. {}/data) in [state] paths",
            name_, name_));
}

std::filesystem::path DirectoryComponent::staging_path() const { return fs::staging_path_for(path_); }

void DirectoryComponent::prepare_staging(const Owner& owner) const {
    const auto s = staging_path();
    fs::remove_tree(s);  // left over by a crash; the intent names it, so it is ours
    fs::make_dirs(s.parent_path());
    fs::make_dirs(s, 0755);
    if ((owner.uid != static_cast<uid_t>(-1) || owner.gid != static_cast<gid_t>(-1)) &&
        ::lchown(s.c_str(), owner.uid, owner.gid) != 0)
        throw RuntimeError(fmt::format("cannot give staging {} to uid {} gid {}: {}", s.string(), owner.uid, owner.gid,
                                       errno_text(errno)));
}

void DirectoryComponent::bind_staging(const std::string& state_id) const { (void)set_id(staging_path(), state_id); }

void DirectoryComponent::sync_staging() const { (void)fs::sync_tree(staging_path()); }

void DirectoryComponent::commit_staging() const {
    // rename(2) atomically replaces an empty directory (e.g. one systemd's StateDirectory= made).
    if (!fs::is_missing_or_empty(path_))
        throw RuntimeError(fmt::format("{} is not empty: refusing to replace it", name_));
    // An empty lost+found counts as no data but makes rename(2) fail with ENOTEMPTY; remove()
    // takes only an empty directory.
    std::error_code ec;
    std::filesystem::remove(path_ / "lost+found", ec);
    fs::rename_durable(staging_path(), path_);
}

void DirectoryComponent::discard_staging() const { fs::remove_tree(staging_path()); }

void DirectoryComponent::remove_target() const { fs::remove_tree(path_); }

ComponentRecord DirectoryComponent::record() const {
    struct stat st {};
    if (::lstat(path_.c_str(), &st) != 0)
        throw RuntimeError(fmt::format("cannot inspect state path {}: {}", name_, errno_text(errno)));
    ComponentRecord r;
    r.kind = kind();
    r.name = name_;
    const auto x = read_state_id_xattr(path_);
    r.binding = x && !x->empty() ? "xattr" : "inode";
    const auto mounts = read_mounts();
    const auto m = mount_of(mounts, path_);
    r.mount_point = m ? m->mount_point : "/";
    if (m) {
        const auto disk = filesystem_mount_point(mounts, *m);
        if (disk != r.mount_point) r.filesystem_mount_point = disk;
        if (const auto b = bind_mount_of(mounts, *m)) {
            r.bind_source = b->source;
            r.bind_mount_point = b->mount_point;
            r.bind_filesystem = b->filesystem;
        }
    }
    r.device = device_text(st.st_dev);
    r.inode = st.st_ino;
    return r;
}

ComponentRecord DirectoryComponent::bind_live(const std::string& state_id, const Owner& owner) const {
    struct stat st {};
    if (::lstat(path_.c_str(), &st) != 0) {
        if (errno != ENOENT)
            throw RuntimeError(fmt::format("cannot inspect state path {}: {}", name_, errno_text(errno)));
        fs::make_dirs(path_, 0755);
        if ((owner.uid != static_cast<uid_t>(-1) || owner.gid != static_cast<gid_t>(-1)) &&
            ::lchown(path_.c_str(), owner.uid, owner.gid) != 0)
            throw RuntimeError(fmt::format("cannot give {} to uid {} gid {}: {}", name_, owner.uid, owner.gid,
                                           errno_text(errno)));
    }
    (void)set_id(path_, state_id);
    fs::fsync_dir(path_);
    return record();
}

void DirectoryComponent::sync_live() const { (void)fs::sync_tree(path_); }

}  // namespace bartl
