// The bookkeeping steps of the loop: take over the store, the pre-migration backup, binding
// an older marker's components, adding newly declared components.
#include <fmt/format.h>

#include "core/error.hpp"
#include "ops/actions.hpp"
#include "ops/backup.hpp"
#include "ops/instance.hpp"
#include "state/declared.hpp"
#include "store/identity.hpp"
#include "util/host.hpp"
#include "util/log.hpp"
#include "util/random.hpp"

namespace bartl {

void do_take_over(const RunContext& rc, Marker marker) {
    if (!rc.store) throw std::logic_error("do_take_over without a store");
    // Another instance of this host still holding the store's writer state is a shared store,
    // not a migration: taking it over would fence that instance.
    const auto current = read_store_identity(*rc.store, rc.ctx, rc.config.app_name, rc.config.instance,
                                             init_store_commands(rc.config));
    if (const auto& w = current.identity.writer; w && w->state_id != marker.state_id && w->host == host_name())
        if (const auto owner = Instance(rc.config).other_owner(w->state_id))
            throw ConfigError(fmt::format(
                "{}: store {} is the store of {} on this host (state ID {}, its writer since {}): two instances "
                "cannot share a store, and taking it over would fence that instance. Give this instance its own "
                "store; nothing was taken over",
                rc.config.where("[backup] store"), rc.store->url(), *owner, w->state_id, w->since));
    StoreClaim claim;
    try {
        claim = take_over_store(*rc.store, rc.ctx, rc.config.app_name, rc.config.instance, marker.state_id,
                                init_store_commands(rc.config));
    } catch (const StoreReadOnly& e) {
        // A restore from a read-only medium (or with read-only credentials) must still serve;
        // the claim waits for the first backup, which needs a writable store anyway.
        log::warn(fmt::format("cannot take the store over, it refuses writes ({}): the previous writer is NOT "
                              "fenced; the first backup claims the store once it is writable",
                              e.what()));
        marker.writer = WriterClaim{"", 0, "takeover"};
        add_history(marker, "takeover", marker.version, marker.version,
                    fmt::format("deferred: store {} refuses writes", rc.store->url()));
        Instance(rc.config).write_marker(marker);
        return;
    }
    marker.writer = WriterClaim{claim.store_id, claim.writer.generation, ""};
    add_history(marker, "takeover", marker.version, marker.version,
                fmt::format("store {} (store ID {}), writer generation {}", rc.store->url(), claim.store_id,
                            claim.writer.generation));
    Instance(rc.config).write_marker(marker);
}

void do_backup_before_migrate(const RunContext& rc, Marker marker) {
    if (!rc.store) throw std::logic_error("do_backup_before_migrate without a store");
    rc.reporter.set_phase(Phase::backing_up);
    BackupRequest req;
    req.reason = "pre-migration";
    req.app_running = false;
    auto b = take_backup(rc.config, *rc.store, rc.ctx, marker, rc.engine.str(), req, rc.reporter);
    Intent in = new_intent("migrate");
    in.from = marker.version;
    in.to = rc.engine.str();
    in.pre_migration_backup = b.id;
    Instance inst(rc.config);
    inst.write_intent(in);
    log::notice(fmt::format("pre-migration backup {} of state {} taken: the way back to {} is `{} --restore-from "
                            "{}` with engine {}",
                            b.id, marker.version, marker.version, bartld_command(rc.config), b.id, marker.version),
                {{"BARTL_BACKUP_ID", b.id}});
    add_history(marker, "backup", marker.version, marker.version, "before migration: " + b.id);
    inst.write_marker(marker);
}

void do_upgrade_marker(const RunContext& rc, Marker marker) {
    const auto declared = declared_components(rc.config);
    const std::string id = new_state_id();
    const Owner owner = app_owner(rc.config);
    std::vector<ComponentRecord> records;
    for (const auto& r : marker.components)
        for (const auto& c : declared)
            if (c->kind() == r.kind && c->name() == r.name) records.push_back(c->bind_live(id, owner));
    marker.state_id = id;
    marker.components = std::move(records);
    // The store of an older bartl has no identity yet, and a reboot must not wait for it:
    // the first backup creates or checks it.
    marker.writer = WriterClaim{"", 0, rc.store ? "claim" : ""};
    add_history(marker, "upgrade", marker.version, marker.version,
                fmt::format("state identity recorded: state ID {}", id));
    Instance(rc.config).write_marker(marker);
    log::notice(fmt::format("state {} of {} now carries state ID {} (its marker predates state identity)",
                            marker.version, rc.config.instance, id));
}

void do_add_components(const RunContext& rc, Marker marker) {
    const auto& config = rc.config;
    const auto declared = declared_components(config);
    const Owner owner = app_owner(config);
    Instance inst(config);
    for (const auto& c : declared) {
        if (marker.find(c->kind(), c->name())) continue;
        auto seen = c->observe(nullptr, marker.state_id);
        if (seen.finding == ComponentFinding::ours && !c->tree() && !config.hook_init_component.empty()) {
            // A database is filled in place: carrying the ID without a marker record, it may
            // hold half of what an interrupted init_component hook wrote. It is bartl's (the
            // ID says so) and the app has never run with it, so it is built again.
            log::warn(fmt::format("new component {} carries the state ID but is not recorded: an interrupted "
                                  "init_component; dropping it and running the hook again",
                                  c->id()));
            c->remove_target();
            seen = c->observe(nullptr, marker.state_id);
        }
        if (seen.finding == ComponentFinding::foreign)
            throw ForeignStateError(fmt::format("new component {}: {}; bartl will not take it over (move the data "
                                                "away, or bring it in with `bartlctl adopt`)",
                                                c->id(), seen.detail));
        std::string how = "created empty";
        if (seen.finding == ComponentFinding::ours) {
            how = "created earlier (carries the state ID), recorded now";
        } else if (!config.hook_init_component.empty()) {
            // Staged like an init, so the component never appears half-filled.
            c->check_target();
            c->prepare_staging(owner);
            // A database is built in place: bound first, so a crash in the hook leaves one that
            // carries the state's ID (ours, refilled by the next start), never a foreign one.
            if (!c->tree()) c->bind_staging(marker.state_id);
            auto env = hook_env(config, rc.engine.str(), marker.version);
            env["BARTL_COMPONENT"] = c->id();
            env["BARTL_COMPONENT_KIND"] = c->kind();
            env["BARTL_COMPONENT_NAME"] = c->name();
            if (c->tree()) env["BARTL_STAGING"] = c->staging_path().string();
            try {
                run_hook(config, "init_component", config.hook_init_component, env, rc.ctx.cancel);
                c->bind_staging(marker.state_id);
                c->sync_staging();
                c->commit_staging();
            } catch (...) {
                try {
                    c->discard_staging();
                } catch (const std::exception& e) {
                    log::warn(fmt::format("cannot remove staging of {}: {}", c->id(), e.what()));
                }
                throw;
            }
            how = "created by " + config.hook_init_component.front();
        }
        const auto rec = seen.finding == ComponentFinding::ours ? c->record() : c->bind_live(marker.state_id, owner);
        marker.components.push_back(rec);
        add_history(marker, "add", marker.version, marker.version, fmt::format("{}: {}", c->id(), how));
        inst.write_marker(marker);
        log::notice(fmt::format("new component {} of {}: {}", c->id(), config.instance, how));
    }
}

}  // namespace bartl
