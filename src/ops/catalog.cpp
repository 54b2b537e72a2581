#include "ops/catalog.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "core/time.hpp"
#include "util/log.hpp"

namespace bartl {

namespace {

constexpr std::size_t kMaxSidecarBytes = 1 << 20;

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool newer(const BackupRef& a, const BackupRef& b) {
    if (a.created != b.created) return a.created > b.created;
    if (a.modified != b.modified) return a.modified > b.modified;
    return a.blob_name > b.blob_name;
}

}  // namespace

std::optional<BackupRef> parse_blob_name(const std::string& app, const std::string& name) {
    const std::string prefix = app + "-";
    if (name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
    BackupRef r;
    std::string rest;
    if (ends_with(name, ".tar.zst")) {
        rest = name.substr(0, name.size() - 8);
    } else if (ends_with(name, ".tar.zst.age")) {
        rest = name.substr(0, name.size() - 12);
        r.encrypted = true;
    } else {
        return std::nullopt;
    }
    rest = rest.substr(prefix.size());  // YYYYMMDDTHHMMSSZ-VERSION-ID
    if (rest.size() < 16 + 1 + 1 + 1 + 1 || rest[16] != '-') return std::nullopt;
    try {
        r.created = parse_compact(rest.substr(0, 16));
    } catch (const std::invalid_argument&) {
        return std::nullopt;
    }
    const auto dash = rest.rfind('-');
    if (dash <= 16 || dash + 1 >= rest.size()) return std::nullopt;
    r.version = rest.substr(17, dash - 17);
    r.id = rest.substr(dash + 1);
    if (r.version.empty() || r.id.find_first_not_of("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
                                 std::string::npos)
        return std::nullopt;
    r.blob_name = name;
    return r;
}

BackupListing list_backup_refs(Store& store, const Context& ctx, const std::string& app) {
    const auto objects = store.list(ctx, app + "-");
    std::map<std::string, const ObjectInfo*> by_name;
    for (const auto& o : objects) by_name[o.name] = &o;
    BackupListing out;
    for (const auto& o : objects) {
        if (!ends_with(o.name, ".json") || o.name == kStoreIdentityName) continue;
        const std::string blob = o.name.substr(0, o.name.size() - 5);
        const auto it = by_name.find(blob);
        if (it == by_name.end()) {
            log::warn(fmt::format("store {}: sidecar {} has no blob {}: ignored", store.url(), o.name, blob));
            out.damaged.push_back(fmt::format("sidecar {} has no blob", o.name));
            continue;
        }
        auto ref = parse_blob_name(app, blob);
        if (!ref) {
            // A backup-like pair bartl cannot order: not "no backup" (invariant 5). The store's
            // identity names one app, so another app's backups do not belong here either.
            log::warn(fmt::format("store {}: {} is not named APP-YYYYMMDDTHHMMSSZ-VERSION-ID.tar.zst: ignored",
                                  store.url(), blob));
            out.damaged.push_back(fmt::format("{} is not named as bartl names backups", blob));
            continue;
        }
        ref->blob_size = it->second->size;
        ref->modified = it->second->modified;
        out.backups.push_back(std::move(*ref));
    }
    std::sort(out.backups.begin(), out.backups.end(), newer);
    return out;
}

BackupManifest read_sidecar(Store& store, const Context& ctx, const std::string& app, const BackupRef& ref,
                            const TrustPolicy& trust) {
    const std::string name = sidecar_name(ref.blob_name);
    auto obj = store.get(ctx, name, kMaxSidecarBytes);
    if (!obj) throw NotFound(fmt::format("store {}: sidecar {} vanished (deleted by retention?)", store.url(), name));
    BackupManifest m;
    try {
        m = BackupManifest::from_json(obj->data);
    } catch (const std::exception& e) {
        throw IntegrityError(fmt::format("sidecar {} does not parse: {}", name, e.what()));
    }
    if (m.app != app) throw IntegrityError(fmt::format("sidecar {} is for app '{}', not '{}'", name, m.app, app));
    if (m.blob_name != ref.blob_name) throw IntegrityError(fmt::format("sidecar {} names blob {}", name, m.blob_name));
    if (m.id != ref.id || m.version != ref.version)
        throw IntegrityError(fmt::format("sidecar {} says id {} and version {}, its name says {} and {}", name, m.id,
                                         m.version, ref.id, ref.version));
    try {
        const auto created = parse_rfc3339_ms(m.created);
        if (std::chrono::floor<std::chrono::seconds>(created) != ref.created)
            throw IntegrityError(fmt::format("sidecar {}: 'created' {} does not match its name's time", name, m.created));
    } catch (const std::invalid_argument& e) {
        throw IntegrityError(fmt::format("sidecar {}: 'created': {}", name, e.what()));
    }
    if (trust.enforce || trust.report) {
        std::optional<std::string> signature;
        if (auto sig = store.get(ctx, signature_name(ref.blob_name), kMaxSidecarBytes))
            signature = std::move(sig->data);
        m.signer = check_signature(m.id, obj->data, signature, trust, m.signature_key);
    }
    return m;
}

std::vector<BackupManifest> list_backups(Store& store, const Context& ctx, const std::string& app,
                                         const TrustPolicy& trust, std::vector<std::string>* damaged) {
    const auto listing = list_backup_refs(store, ctx, app);
    if (damaged) *damaged = listing.damaged;
    std::vector<BackupManifest> out;
    for (const auto& ref : listing.backups) {
        try {
            out.push_back(read_sidecar(store, ctx, app, ref, trust));
        } catch (const NotFound&) {
            continue;  // deleted by retention since the listing
        } catch (const IntegrityError& e) {
            log::warn(fmt::format("store {}: {}: backup ignored", store.url(), e.what()));
            if (damaged) damaged->push_back(e.what());
        }
    }
    return out;
}

std::optional<BackupManifest> find_backup(const std::vector<BackupManifest>& backups, const std::string& id) {
    for (const auto& b : backups)
        if (b.id == id || b.blob_name == id) return b;
    return std::nullopt;
}

std::optional<BackupRef> find_ref(const std::vector<BackupRef>& refs, const std::string& id) {
    for (const auto& r : refs)
        if (r.id == id || r.blob_name == id) return r;
    return std::nullopt;
}

std::vector<BackupRef> restore_order(const std::vector<BackupRef>& backups, std::chrono::system_clock::time_point now) {
    const auto limit = now + kClockSkewAllowed;
    std::vector<BackupRef> sane, future;
    for (const auto& b : backups) (b.created > limit ? future : sane).push_back(b);
    std::sort(sane.begin(), sane.end(), newer);
    std::sort(future.begin(), future.end(), [](const BackupRef& a, const BackupRef& b) { return newer(b, a); });
    sane.insert(sane.end(), future.begin(), future.end());
    return sane;
}

CandidateChoice choose_restore_candidate(Store& store, const Context& ctx, const std::string& app,
                                         const TrustPolicy& trust, const BackupListing& listing,
                                         const std::set<std::string>& rejected,
                                         const std::optional<StoreWriter>& writer,
                                         std::chrono::system_clock::time_point now) {
    CandidateChoice c;
    c.listed = listing.backups.size();
    c.damaged = listing.damaged.size();
    const auto limit = now + kClockSkewAllowed;
    std::optional<std::chrono::system_clock::time_point> writer_since;
    if (writer) {
        try {
            writer_since = parse_rfc3339_ms(writer->since);
        } catch (const std::invalid_argument&) {
        }
    }
    // The lines in c.skipped are the caller's to report (observe() makes them warnings), so
    // they are not logged here as well.
    for (const auto& ref : restore_order(listing.backups, now)) {
        if (rejected.count(ref.id)) continue;
        if (ref.created > limit) {
            // Only reached when every backup dated sanely was passed over.
            c.skipped.push_back(fmt::format("backup {} is dated {}, more than {} min ahead of this host's clock: "
                                            "tried only because no backup dated before now is usable",
                                            ref.id, format_rfc3339(ref.created), kClockSkewAllowed.count()));
        }
        BackupManifest m;
        try {
            m = read_sidecar(store, ctx, app, ref, trust);
        } catch (const NotFound&) {
            continue;
        } catch (const IntegrityError& e) {
            c.skipped.push_back(fmt::format("store {}: {}: backup ignored", store.url(), e.what()));
            ++c.damaged;
            continue;
        }
        // A writer fenced by a takeover may still have finished a backup after it: that
        // backup is of a state the store no longer follows.
        if (writer && writer_since && !m.writer_state_id.empty() && m.writer_state_id != writer->state_id &&
            parse_rfc3339_ms(m.created) > *writer_since) {
            c.skipped.push_back(fmt::format("backup {} was written by state {} after state {} took the store over "
                                            "at {}: a fenced writer's backup, not restored",
                                            m.id, m.writer_state_id, writer->state_id, writer->since));
            continue;
        }
        // A backup dated in the future that this one beats must not go unnoticed: some host's
        // clock is wrong, and without this line nobody would learn why it was not restored.
        if (ref.created <= limit)
            for (const auto& f : listing.backups)
                if (f.created > limit && !rejected.count(f.id))
                    c.skipped.push_back(fmt::format("backup {} is dated {}, more than {} min ahead of this host's "
                                                    "clock (a host with a wrong clock?): not taken as the newest; "
                                                    "backup {} is, the newest dated before now",
                                                    f.id, format_rfc3339(f.created), kClockSkewAllowed.count(),
                                                    m.id));
        c.chosen = std::move(m);
        return c;
    }
    return c;
}

}  // namespace bartl
