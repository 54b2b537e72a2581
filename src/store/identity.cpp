#include "store/identity.hpp"

#include <chrono>

#include <fmt/format.h>

#include "core/time.hpp"
#include "util/random.hpp"
#include "util/host.hpp"
#include "util/log.hpp"

namespace bartl {
namespace {

constexpr std::size_t kMaxIdentityBytes = 64 * 1024;
constexpr int kClaimAttempts = 5;

std::string now_ms() {
    return format_rfc3339_ms(std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()));
}

std::string init_hint(const std::string& instance, const std::string& init_commands) {
    return fmt::format("if this is a new, empty store, create its identity once with {}",
                       init_commands.empty() ? fmt::format("`bartld --instance {} --init-store` (or `bartlctl -i {} "
                                                           "init-store`)",
                                                           instance, instance)
                                             : init_commands);
}

/// The identity, or std::nullopt when absent; throws for another app or a damaged one.
std::optional<IdentityRead> try_read(Store& store, const Context& ctx, const std::string& app) {
    auto obj = store.get(ctx, kStoreIdentityName, kMaxIdentityBytes);
    if (!obj) return std::nullopt;
    IdentityRead r;
    try {
        r.identity = StoreIdentity::from_json(obj->data);
    } catch (const std::invalid_argument& e) {
        throw RuntimeError(fmt::format("store {}: {} is damaged: {}; bartl will not guess whose store this is: "
                                       "repair it from a copy, or move it aside and run --init-store",
                                       store.url(), kStoreIdentityName, e.what()));
    }
    if (r.identity.app != app)
        throw StoreNotInitialized(fmt::format("store {} belongs to app {}, not {}: is [backup] store the right "
                                              "location? (each app needs its own store)",
                                              store.url(), r.identity.app, app));
    r.etag = obj->etag;
    return r;
}

std::string describe(const StoreWriter& w) {
    return fmt::format("state {} on host {} (instance {}, generation {}, since {})", w.state_id, w.host, w.instance,
                       w.generation, w.since);
}

/// What a fenced state is told: who took the store over, and what to do.
std::string fenced_message(const Store& store, const StoreWriter& w, const std::string& state_id,
                           const std::string& instance) {
    return fmt::format(
        "fenced: store {} was taken over by {}; this state ({}) is no longer its writer, so it neither backs up "
        "nor prunes there. If this host is the old server after a migration, stop it (`systemctl disable --now "
        "bartld@{}`); to make this host the writer again, move its state aside and restore from the store",
        store.url(), describe(w), state_id, instance);
}

StoreClaim claim(Store& store, const Context& ctx, const std::string& app, const std::string& instance,
                  const std::string& state_id, bool only_if_unclaimed, const std::string& init_commands) {
    for (int attempt = 1;; ++attempt) {
        auto cur = try_read(store, ctx, app);
        if (!cur)
            throw StoreNotInitialized(fmt::format("store {} holds no {}: it is not a bartl store (an unmounted "
                                                  "disk, a wrong bucket or prefix?); {}",
                                                  store.url(), kStoreIdentityName, init_hint(instance, init_commands)));
        auto& id = cur->identity;
        if (id.writer && id.writer->state_id == state_id) return {id.store_id, *id.writer};
        if (only_if_unclaimed && id.writer) return {id.store_id, *id.writer};  // the caller compares state IDs
        StoreWriter w;
        w.state_id = state_id;
        w.host = host_name();
        w.instance = instance;
        w.generation = id.writer ? id.writer->generation + 1 : 1;
        w.since = now_ms();
        const auto previous = id.writer;
        id.writer = w;
        try {
            store.put(ctx, kStoreIdentityName, id.to_json(), WriteCondition::match(cur->etag));
        } catch (const PreconditionFailed&) {
            if (attempt >= kClaimAttempts) throw;
            continue;  // someone changed it since our read: look again
        }
        log::notice(previous ? fmt::format("store {} taken over by state {} (generation {}); the previous writer, {}, "
                                           "is fenced from now on",
                                           store.url(), state_id, w.generation, describe(*previous))
                             : fmt::format("store {} claimed by state {} (generation 1)", store.url(), state_id));
        return {id.store_id, w};
    }
}

}  // namespace

IdentityRead read_store_identity(Store& store, const Context& ctx, const std::string& app,
                                 const std::string& instance, const std::string& init_commands) {
    auto r = try_read(store, ctx, app);
    if (!r)
        throw StoreNotInitialized(fmt::format("store {} holds no {}: it is not a bartl store (an unmounted disk, a "
                                              "wrong bucket or prefix?), so it cannot answer \"no backup\"; {}",
                                              store.url(), kStoreIdentityName, init_hint(instance, init_commands)));
    return *r;
}

InitStoreResult init_store(Store& store, const Context& ctx, const std::string& app) {
    if (auto cur = try_read(store, ctx, app)) return {cur->identity, false};
    StoreIdentity id;
    id.store_id = new_state_id();
    id.app = app;
    id.created = now_ms();
    id.created_by = host_name();
    try {
        store.put(ctx, kStoreIdentityName, id.to_json(), WriteCondition::absent());
    } catch (const PreconditionFailed&) {
        // Another host created it at the same moment: theirs stands.
        if (auto cur = try_read(store, ctx, app)) return {cur->identity, false};
        throw;
    }
    // No log line: `bartld --init-store` and `bartlctl init-store` print the result (a second
    // line on stderr said it twice), and an older store's adoption says so before this.
    return {id, true};
}

StoreClaim take_over_store(Store& store, const Context& ctx, const std::string& app, const std::string& instance,
                            const std::string& state_id, const std::string& init_commands) {
    return claim(store, ctx, app, instance, state_id, false, init_commands);
}

StoreClaim require_writer(Store& store, const Context& ctx, const std::string& app, const std::string& instance,
                           const std::string& state_id, bool adopt_legacy_store,
                           const std::string& init_commands) {
    if (adopt_legacy_store && !try_read(store, ctx, app)) {
        bool has_backups = false;
        for (const auto& o : store.list(ctx, app + "-"))
            if (o.name.size() > 5 && o.name.compare(o.name.size() - 5, 5, ".json") == 0) has_backups = true;
        if (has_backups) {
            log::notice(fmt::format("store {} holds backups of {} from an older bartl but no {}: creating it",
                                    store.url(), app, kStoreIdentityName));
            init_store(store, ctx, app);
        }
    }
    const auto c = claim(store, ctx, app, instance, state_id, true, init_commands);
    if (c.writer.state_id == state_id) return c;
    throw FencedError(fenced_message(store, c.writer, state_id, instance));
}

std::optional<std::string> fenced_by(Store& store, const Context& ctx, const std::string& app,
                                     const std::string& instance, const std::string& state_id) {
    const auto r = read_store_identity(store, ctx, app, instance);
    const auto& w = r.identity.writer;
    if (!w || w->state_id == state_id) return std::nullopt;
    return fenced_message(store, *w, state_id, instance);
}

}  // namespace bartl
