#include "ops/commands.hpp"

#include <filesystem>

#include <fmt/format.h>

#include "core/words.hpp"
#include "core/error.hpp"
#include "core/store_url.hpp"
#include "ops/actions.hpp"
#include "ops/catalog.hpp"
#include "ops/instance.hpp"
#include "state/declared.hpp"
#include "state/directory.hpp"
#include "util/lock.hpp"
#include "util/log.hpp"
#include "util/random.hpp"

namespace bartl {

namespace {

/// Regular files and their bytes under `p` (for showing what adopt takes over).
std::pair<std::uint64_t, std::uint64_t> tree_size(const std::filesystem::path& p) {
    std::uint64_t files = 0, bytes = 0;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(p, ec); !ec && it != decltype(it)();
         it.increment(ec)) {
        if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
            ++files;
            bytes += it->file_size(ec);
        }
    }
    return {files, bytes};
}

StoreOptions store_options(const Config& config) {
    StoreOptions o;
    o.settings = config.store_settings;
    if (const char* d = std::getenv("CREDENTIALS_DIRECTORY"); d && *d) o.credentials_dir = d;
    return o;
}

}  // namespace

std::unique_ptr<Store> open_configured_store(const Config& config) {
    if (config.store.empty()) return nullptr;
    return open_store(config.store, store_options(config));
}

std::unique_ptr<Store> require_store(const Config& config, const std::string& what) {
    auto s = open_configured_store(config);
    if (!s) throw UsageError(fmt::format("{}: no [backup] store configured: {}", config.file.string(), what));
    return s;
}

BackupManifest check_pin(const Config& config, Store& store, const Context& ctx, const std::string& id) {
    const auto listing = list_backup_refs(store, ctx, config.app_name);
    if (const auto ref = find_ref(listing.backups, id)) {
        try {
            return read_sidecar(store, ctx, config.app_name, *ref, trust_policy(config));
        } catch (const IntegrityError& e) {
            throw UsageError(fmt::format("the chosen backup cannot be restored: {}", e.what()));
        }
    }
    std::string known;
    for (std::size_t i = 0; i < listing.backups.size() && i < 5; ++i) {
        const auto& b = listing.backups[i];
        known += fmt::format("{}{} (state {})", i ? ", " : "", b.id, b.version);
    }
    // Neutral wording: bartlctl restore-from and the bus method get this too, not only --restore-from.
    throw UsageError(fmt::format("no backup {} of {} in store {}{}{}", id, config.app_name, store.url(),
                                 listing.backups.empty() ? " (it holds none)" : "; newest: ", known));
}

BackupManifest pin_restore(const Config& config, Store& store, const Context& ctx, const std::string& id) {
    auto b = check_pin(config, store, ctx, id);
    Instance(config).write_pin(b.id);
    return b;
}

AdoptResult adopt(const Config& config, const Version& version) {
    // bartld must not start on the data while the marker is being written.
    InstanceLock lock(config.bartl_dir, config.instance);
    Instance inst(config);
    auto mr = inst.read_marker();
    // A marker that does not parse proves nothing (bartld refuses the data as foreign and
    // offers adopt): it is moved aside, kept for a post-mortem, once the data is adopted.
    if (mr.exists && mr.marker)
        throw RuntimeError(fmt::format("instance {} already has a state marker {} (state {}, origin {}): its state "
                                       "is bartl's, nothing to adopt",
                                       config.instance, inst.marker_path().string(), mr.marker->version,
                                       mr.marker->origin));
    if (auto intent = inst.read_intent())
        throw RuntimeError(fmt::format("instance {} has an unfinished {} of bartl ({}): that data is bartl's own "
                                       "half-done work, which bartld cleans up at its next start; nothing to adopt",
                                       config.instance, intent->op, inst.intent_path().string()));
    const auto declared = declared_components(config);
    AdoptResult result;
    std::string summary;
    for (const auto& c : declared) {
        if (!c->holds_data()) continue;
        AdoptedComponent a{c->id()};
        if (c->tree()) std::tie(a.files, a.bytes) = tree_size(*c->tree());
        summary += fmt::format("{}{} ({}, {})", summary.empty() ? "" : ", ", a.id, count_noun(a.files, "file", "files"),
                               format_bytes(a.bytes));
        result.components.push_back(a);
    }
    if (result.components.empty())
        throw RuntimeError(fmt::format("instance {}: the declared state holds no data; nothing to adopt (bartld "
                                       "restores or initialises empty state by itself)",
                                       config.instance));
    for (const auto& c : declared) c->check_target();
    // Re-binding a path another instance serves would make that instance's state foreign. A
    // path that does not exist yet (the data is all in a database) carries nobody's ID.
    for (const auto& c : declared)
        if (std::error_code ec; c->tree() && std::filesystem::is_directory(*c->tree(), ec))
            if (const auto id = read_state_id_xattr(*c->tree()); id && !id->empty())
                if (const auto owner = inst.other_owner(*id))
                    throw ConfigError(fmt::format(
                        "{}: {} holds the state of {} (state ID {}): two instances cannot share a state path, "
                        "nothing adopted. Declare this instance's own paths in [state] paths",
                        config.where("[state] paths[0]"), c->tree()->string(), *owner, *id));
    Marker& m = result.marker;
    m.app = config.app_name;
    m.version = version.str();
    m.state_id = new_state_id();
    m.origin = "adopt";
    const Owner owner = app_owner(config);
    for (const auto& c : declared) m.components.push_back(c->bind_live(m.state_id, owner));
    add_history(m, "adopt", "", m.version, "adopted by bartlctl: " + summary);
    if (mr.exists) inst.retire_marker("it did not parse (" + mr.error + "); the data was adopted as state " + m.version);
    inst.write_marker(m);
    log::notice(fmt::format("instance {} adopted as state {} (state ID {}): {}", config.instance, m.version,
                            m.state_id, summary));
    return result;
}

Marker forget_component(const Config& config, const std::string& component) {
    InstanceLock lock(config.bartl_dir, config.instance);
    Instance inst(config);
    auto mr = inst.read_marker();
    if (!mr.marker)
        throw RuntimeError(fmt::format("instance {} has no {}state marker {}: nothing to forget", config.instance,
                                       mr.exists ? "readable " : "", inst.marker_path().string()));
    Marker m = *mr.marker;
    auto it = std::find_if(m.components.begin(), m.components.end(), [&](const ComponentRecord& r) {
        return component_id(r.kind, r.name) == component || (r.kind == "path" && r.name == component);
    });
    if (it == m.components.end()) {
        std::string known;
        for (const auto& r : m.components) known += (known.empty() ? "" : ", ") + component_id(r.kind, r.name);
        throw NotFound(fmt::format("the state of {} records no component '{}' (it records: {})", config.instance,
                                   component, known.empty() ? "none" : known));
    }
    const std::string id = component_id(it->kind, it->name);
    for (const auto& c : declared_components(config))
        if (c->id() == id)
            throw UsageError(fmt::format("{} is still declared in {}: remove it from the configuration first, then "
                                         "forget it",
                                         id, config.file.string()));
    m.components.erase(it);
    add_history(m, "forget", m.version, m.version,
                fmt::format("{} is no longer part of the state (its data was left in place)", id));
    inst.write_marker(m);
    log::notice(fmt::format("instance {}: component {} forgotten", config.instance, id));
    return m;
}

InitStoreResult init_configured_store(const Config& config, const Context& ctx) {
    auto store = require_store(config, "there is no store to initialise");
    // bartl never creates a file store's directory (a missing one may be an unmounted disk),
    // but here the operator means to make a store, so say how.
    if (config.store.rfind("file:", 0) == 0) {
        const auto dir = file_url_path(config.store);
        std::error_code ec;
        if (!std::filesystem::exists(dir, ec) && !ec)
            throw StoreUnavailable(fmt::format(
                "store {}: directory {} does not exist: create it with `mkdir -m 0700 {}` (or mount the backup disk "
                "there), then run --init-store again",
                config.store, dir.string(), dir.string()));
    }
    return init_store(*store, ctx, config.app_name);
}

}  // namespace bartl
