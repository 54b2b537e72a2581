// Migration script names and pending-step selection.
#include "core/migrations.hpp"

#include <algorithm>
#include <regex>
#include <stdexcept>

namespace bartl {
namespace {

/// A pre-release tag as release engineering writes them, so "2.0.0-rc.1" is a version and
/// "2.0.0-add-tags" a slug.
bool looks_like_prerelease(const Version& v) {
    if (v.prerelease.empty()) return false;
    const std::string& first = v.prerelease.front();
    if (first.find_first_not_of("0123456789") == std::string::npos) return true;
    static const std::regex tag("^(alpha|beta|rc|pre|preview|dev)[0-9]*$", std::regex::icase);
    return std::regex_match(first, tag);
}

bool is_release(const Version& v) { return v.prerelease.empty(); }

bool same_core(const Version& a, const Version& b) {
    return a.major == b.major && a.minor == b.minor && a.patch == b.patch;
}

}  // namespace

std::optional<MigrationScript> parse_migration_name(const std::string& file_name) {
    if (file_name.empty() || file_name[0] == '.' || file_name.find('+') != std::string::npos) return std::nullopt;
    if (const auto us = file_name.find('_'); us != std::string::npos) {
        if (us + 1 == file_name.size()) return std::nullopt;  // "2.0.0_"
        auto v = Version::try_parse(file_name.substr(0, us));
        if (!v) return std::nullopt;
        return MigrationScript{std::move(*v), file_name, file_name.substr(us + 1)};
    }
    if (auto v = Version::try_parse(file_name); v && (is_release(*v) || looks_like_prerelease(*v)))
        return MigrationScript{std::move(*v), file_name, ""};
    // The older VERSION-slug naming: MAJOR.MINOR.PATCH, '-', a slug.
    const std::size_t end = file_name.find_first_not_of("0123456789.");
    if (end == std::string::npos || file_name[end] != '-' || end + 1 == file_name.size()) return std::nullopt;
    auto v = Version::try_parse(file_name.substr(0, end));
    if (!v) return std::nullopt;
    return MigrationScript{std::move(*v), file_name, file_name.substr(end + 1)};
}

bool migration_due(const Version& script, const Version& v) noexcept {
    if (script <= v) return true;
    return is_release(script) && !is_release(v) && same_core(script, v);
}

std::vector<MigrationScript> pending_migrations(std::vector<MigrationScript> scripts, const Version& state,
                                                const Version& engine, const std::set<std::string>& applied) {
    std::stable_sort(scripts.begin(), scripts.end(),
                     [](const MigrationScript& a, const MigrationScript& b) { return a.version < b.version; });
    // Checked over the whole directory, not only the pending range: two scripts for one
    // version make the directory ambiguous for every upgrade path.
    for (std::size_t i = 1; i < scripts.size(); ++i)
        if (scripts[i - 1].version == scripts[i].version)
            throw std::invalid_argument("two migration scripts for version " + scripts[i].version.str() + ": \"" +
                                        scripts[i - 1].file_name + "\" and \"" + scripts[i].file_name + "\"");
    std::vector<MigrationScript> out;
    for (auto& s : scripts)
        if (migration_due(s.version, engine) && !migration_due(s.version, state) && !applied.count(s.file_name))
            out.push_back(std::move(s));
    return out;
}

Version version_after(const MigrationScript& script, const Version& engine) {
    return script.version <= engine ? script.version : engine;
}

}  // namespace bartl
