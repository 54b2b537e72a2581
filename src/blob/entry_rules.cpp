#include "blob/entry_rules.hpp"

#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>

#include <fmt/format.h>

namespace bartl {

bool path_excluded(const std::string& rel, const std::vector<std::string>& globs) {
    if (globs.empty()) return false;
    const auto slash = rel.rfind('/');
    const std::string base = slash == std::string::npos ? rel : rel.substr(slash + 1);
    for (const auto& g : globs) {
        if (g.find('/') == std::string::npos ? ::fnmatch(g.c_str(), base.c_str(), 0) == 0
                                             : ::fnmatch(g.c_str(), rel.c_str(), FNM_PATHNAME) == 0)
            return true;
    }
    return false;
}

std::vector<std::string_view> split_path(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        auto pos = s.find('/', start);
        out.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
        if (pos == std::string_view::npos) break;
        start = pos + 1;
    }
    return out;
}

std::optional<std::string> symlink_target_problem(const std::string& target, const std::string& link_rel) {
    if (target.empty()) return "empty target";
    if (target.front() == '/') return "absolute target";
    long depth = static_cast<long>(std::count(link_rel.begin(), link_rel.end(), '/'));  // dirs above the link
    bool descended = false;
    for (const auto& p : split_path(target)) {
        if (p.empty() || p == ".") continue;
        if (p == "..") {
            // "a/.." is not lexically "" when a is itself a link ("here -> ."): the kernel
            // climbs from wherever a leads. Only leading ".." components can be counted.
            if (descended) return "\"..\" after a path component (a link chain could climb out of the tree)";
            if (--depth < 0) return "target points outside the restored tree";
        } else {
            descended = true;
            ++depth;
        }
    }
    return std::nullopt;
}

const char* unsupported_kind(mode_t type) {
    switch (type & S_IFMT) {
        case S_IFIFO: return "FIFO";
        case S_IFSOCK: return "socket";
        case S_IFCHR: return "character device";
        case S_IFBLK: return "block device";
        default: return nullptr;
    }
}

bool valid_section_name(std::string_view section) {
    if (section.empty() || section.size() > 128 || section.front() == '.') return false;
    return std::all_of(section.begin(), section.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
               c == '-';
    });
}

std::string chunk_entry_name(const std::string& section, std::uint64_t index) {
    return fmt::format("db/{}.{:0{}}", section, index, kChunkDigits);
}

std::optional<ChunkName> parse_chunk_entry_name(std::string_view name) {
    if (name.substr(0, 3) != "db/") return std::nullopt;
    name.remove_prefix(3);
    const auto dot = name.rfind('.');
    if (dot == std::string_view::npos || name.size() - dot - 1 != kChunkDigits) return std::nullopt;
    const auto digits = name.substr(dot + 1);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
    ChunkName c;
    c.section = std::string(name.substr(0, dot));
    if (!valid_section_name(c.section)) return std::nullopt;
    for (char d : digits) c.index = c.index * 10 + std::uint64_t(d - '0');
    return c;
}

}  // namespace bartl
