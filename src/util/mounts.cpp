#include "util/mounts.hpp"

#include <sstream>

#include <sys/statvfs.h>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/words.hpp"
#include "util/fs.hpp"

namespace bartl {
namespace {

std::string unescape(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && s.size() - i >= 4 && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' &&
            s[i + 3] <= '7') {
            out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

/// True when `prefix` is `path` or an ancestor of it, by whole components.
bool is_prefix(const std::string& prefix, const std::string& path) {
    if (prefix == "/") return !path.empty() && path[0] == '/';
    if (path.compare(0, prefix.size(), prefix) != 0) return false;
    return path.size() == prefix.size() || path[prefix.size()] == '/';
}

/// Normal form without a trailing '/' ("/var/lib/" -> "/var/lib"), "/" stays.
std::string normal(const std::filesystem::path& p) {
    std::string s = p.lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
}

}  // namespace

std::vector<MountEntry> parse_mountinfo(const std::string& text) {
    std::vector<MountEntry> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        // ID PARENT MAJOR:MINOR ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        std::istringstream f(line);
        std::string id, parent, dev, root, mp;
        if (!(f >> id >> parent >> dev >> root >> mp)) continue;
        std::string tok, fstype;
        while (f >> tok)
            if (tok == "-") {
                f >> fstype;
                break;
            }
        if (fstype.empty() || dev.find(':') == std::string::npos) continue;
        out.push_back(MountEntry{unescape(mp), dev, fstype, unescape(root)});
    }
    return out;
}

std::vector<MountEntry> read_mounts() {
    auto text = fs::read_file("/proc/self/mountinfo");
    if (!text) throw RuntimeError("cannot read /proc/self/mountinfo: it does not exist (is /proc mounted?)");
    return parse_mountinfo(*text);
}

std::optional<MountEntry> mount_of(const std::vector<MountEntry>& mounts, const std::filesystem::path& path) {
    const std::string p = normal(path);
    std::optional<MountEntry> best;
    for (const auto& m : mounts)
        if (is_prefix(m.mount_point, p) && (!best || m.mount_point.size() >= best->mount_point.size())) best = m;
    return best;
}

std::string filesystem_mount_point(const std::vector<MountEntry>& mounts, const MountEntry& m) {
    if (m.root == "/") return m.mount_point;
    for (const auto& e : mounts)
        if (e.device == m.device && e.root == "/" && normal(std::filesystem::path(e.mount_point) / m.root.substr(1)) ==
                                                         normal(m.mount_point))
            return e.mount_point;
    return "";
}

MountEntry effective_mount(const std::vector<MountEntry>& mounts, const MountEntry& m) {
    MountEntry e = m;
    // Each step moves to a strictly shorter mount point: it ends.
    while (e.mount_point != "/") {
        const auto parent = mount_of(mounts, std::filesystem::path(e.mount_point).parent_path());
        if (!parent || parent->device != e.device) break;
        const auto rel = std::filesystem::path(e.mount_point).lexically_relative(parent->mount_point);
        if (normal(std::filesystem::path(parent->root) / rel) != normal(e.root)) break;
        e = *parent;
    }
    return e;
}

std::optional<BindMount> bind_mount_of(const std::vector<MountEntry>& mounts, const MountEntry& m) {
    const MountEntry e = effective_mount(mounts, m);
    if (e.root == "/") return std::nullopt;
    // The bound directory is named through the mount of its filesystem that shows the
    // nearest ancestor of it: the filesystem's root, or on btrfs, where that is often mounted
    // nowhere, a subvolume ("/" showing /@rootfs names /@rootfs/srv/appdata "/srv/appdata").
    // A mount of the very same directory counts only when it came first (/srv/media bound
    // at /var/lib/media, not the reverse).
    const MountEntry* via = nullptr;
    bool seen_e = false;
    for (const auto& r : mounts) {
        if (r.mount_point == e.mount_point) {
            seen_e = seen_e || (r.root == e.root && r.device == e.device);
            continue;
        }
        if (r.device != e.device || !is_prefix(r.root, e.root) || (r.root == e.root && seen_e)) continue;
        if (!via || r.root.size() > via->root.size()) via = &r;
    }
    if (!via) return std::nullopt;
    const auto rel = std::filesystem::path(e.root).lexically_relative(via->root);
    const std::string source = normal(std::filesystem::path(via->mount_point) / rel);
    if (source == e.mount_point) return std::nullopt;
    return BindMount{e.mount_point, source, e.device, effective_mount(mounts, *via).mount_point};
}

std::optional<MountEntry> mount_at(const std::vector<MountEntry>& mounts, const std::filesystem::path& mount_point) {
    const std::string p = normal(mount_point);
    std::optional<MountEntry> top;
    for (const auto& m : mounts)
        if (m.mount_point == p) top = m;
    return top;
}

bool is_mount_point(const std::vector<MountEntry>& mounts, const std::filesystem::path& mount_point) {
    const std::string p = normal(mount_point);
    for (const auto& m : mounts)
        if (m.mount_point == p) return true;
    return false;
}

std::optional<FileSystemSpace> filesystem_space(const std::filesystem::path& path) {
    struct statvfs v {};
    if (::statvfs(path.c_str(), &v) != 0) return std::nullopt;
    FileSystemSpace s;
    s.size = static_cast<std::uint64_t>(v.f_blocks) * v.f_frsize;
    s.available = static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
    try {  // only for the message: a mount table that cannot be read leaves it out
        std::error_code ec;
        const auto canonical = std::filesystem::weakly_canonical(path, ec);
        const auto mounts = read_mounts();
        if (const auto m = mount_of(mounts, ec ? path : canonical)) s.mount_point = filesystem_mount_point(mounts, *m);
    } catch (const std::exception&) {
    }
    return s;
}

std::string space_text(const FileSystemSpace& space, const std::filesystem::path& path) {
    return fmt::format("the file system {} {} holds {}, {} of it free",
                       space.mount_point.empty() ? "of" : "at", space.mount_point.empty() ? path.string() : space.mount_point,
                       format_bytes(space.size), format_bytes(space.available));
}

}  // namespace bartl
