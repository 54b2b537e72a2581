#include "ops/catalog.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "core/time.hpp"
#include "util/log.hpp"

namespace bartl {

namespace {

constexpr std::size_t kMaxSidecarBytes = 1 << 20;

std::string read_small(Store& store, const std::string& name) {
    auto src = store.open(name);
    std::string out;
    char buf[8192];
    for (;;) {
        auto n = src->read(buf, sizeof buf);
        if (n == 0) break;
        out.append(buf, n);
        if (out.size() > kMaxSidecarBytes) throw RuntimeError(fmt::format("sidecar {} is larger than 1 MiB", name));
    }
    return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<BackupManifest> list_backups(Store& store, const std::string& app, std::vector<std::string>* damaged) {
    auto note_damaged = [&](const std::string& why) {
        if (damaged) damaged->push_back(why);
    };
    auto names = store.list(app + "-");
    std::set<std::string> present(names.begin(), names.end());
    std::vector<BackupManifest> out;
    for (const auto& name : names) {
        if (!ends_with(name, ".json")) continue;
        const std::string blob = name.substr(0, name.size() - 5);
        if (!present.count(blob)) {
            log::warn(fmt::format("store {}: sidecar {} has no blob {}: ignored", store.url(), name, blob));
            note_damaged(fmt::format("sidecar {} has no blob", name));
            continue;
        }
        BackupManifest m;
        try {
            m = BackupManifest::from_json(read_small(store, name));
        } catch (const StoreUnavailable&) {
            throw;
        } catch (const NotFound&) {
            continue;  // deleted by retention since the listing
        } catch (const std::exception& e) {
            log::warn(fmt::format("store {}: sidecar {} does not parse: {}: backup ignored", store.url(), name, e.what()));
            note_damaged(fmt::format("sidecar {} does not parse", name));
            continue;
        }
        if (m.app != app) {
            log::warn(fmt::format("store {}: sidecar {} is for app '{}', not '{}': ignored", store.url(), name, m.app, app));
            continue;
        }
        try {
            (void)parse_rfc3339_ms(m.created);
        } catch (const std::exception& e) {
            log::warn(fmt::format("store {}: sidecar {}: 'created': {}: backup ignored", store.url(), name, e.what()));
            note_damaged(fmt::format("sidecar {}: bad 'created'", name));
            continue;
        }
        if (m.blob_name != blob) {
            log::warn(fmt::format("store {}: sidecar {} names blob {}: ignored", store.url(), name, m.blob_name));
            note_damaged(fmt::format("sidecar {} names blob {}", name, m.blob_name));
            continue;
        }
        out.push_back(std::move(m));
    }
    std::sort(out.begin(), out.end(), [](const BackupManifest& a, const BackupManifest& b) {
        const auto ta = parse_rfc3339_ms(a.created), tb = parse_rfc3339_ms(b.created);
        if (ta != tb) return ta > tb;
        return a.blob_name > b.blob_name;
    });
    return out;
}

std::optional<BackupManifest> find_backup(const std::vector<BackupManifest>& backups, const std::string& id) {
    for (const auto& b : backups)
        if (b.id == id || b.blob_name == id) return b;
    return std::nullopt;
}

}  // namespace bartl
