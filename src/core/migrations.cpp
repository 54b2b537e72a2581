// Migration script names and step selection.
#include "core/migrations.hpp"

#include <algorithm>
#include <stdexcept>

namespace bartl {

std::optional<MigrationScript> parse_migration_name(const std::string& file_name) {
    // The version ends at the first character that cannot be part of
    // MAJOR.MINOR.PATCH; only '-' (start of the slug) or the end may follow.
    const std::size_t end = file_name.find_first_not_of("0123456789.");
    const std::string core = file_name.substr(0, end);
    if (end != std::string::npos) {
        if (file_name[end] != '-' || end + 1 == file_name.size()) return std::nullopt;  // "2.0.0.sh", "2.0.0-"
    }
    // Hidden files start with '.', which makes `core` invalid here as well.
    auto v = Version::try_parse(core);
    if (!v) return std::nullopt;
    return MigrationScript{std::move(*v), file_name};
}

std::vector<MigrationScript> select_migrations(std::vector<MigrationScript> scripts, const Version& from,
                                               const Version& to) {
    std::stable_sort(scripts.begin(), scripts.end(),
                     [](const MigrationScript& a, const MigrationScript& b) { return a.version < b.version; });
    // Checked over the whole directory, not only the selected range: two scripts
    // for one version make the directory ambiguous for every upgrade path.
    for (std::size_t i = 1; i < scripts.size(); ++i)
        if (scripts[i - 1].version == scripts[i].version)
            throw std::invalid_argument("two migration scripts for version " + scripts[i].version.str() + ": \"" +
                                        scripts[i - 1].file_name + "\" and \"" + scripts[i].file_name + "\"");
    std::vector<MigrationScript> out;
    for (auto& s : scripts)
        if (from < s.version && s.version <= to) out.push_back(std::move(s));
    return out;
}

}  // namespace bartl
