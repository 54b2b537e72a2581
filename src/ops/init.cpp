#include <fmt/format.h>

#include "app/user.hpp"
#include "core/error.hpp"
#include "ops/actions.hpp"
#include "ops/events.hpp"
#include "ops/instance.hpp"
#include "ops/staging.hpp"
#include "state/declared.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/random.hpp"

namespace bartl {

namespace {

std::vector<const Component*> view(const std::vector<std::unique_ptr<Component>>& v) {
    std::vector<const Component*> out;
    for (const auto& c : v) out.push_back(c.get());
    return out;
}

}  // namespace

Owner app_owner(const Config& config) {
    if (!config.run_as) return Owner{};  // bartld's own
    return Owner{config.run_as->uid, config.run_as->gid};
}

void do_init(const RunContext& rc) {
    const auto& config = rc.config;
    Instance inst(config);
    rc.reporter.set_phase(Phase::initializing);
    rc.reporter.set_status(fmt::format("Initializing {} {}", config.instance, rc.engine.str()));
    log::write(log::Level::notice, fmt::format("init of {} at {} started", config.instance, rc.engine.str()), {},
               event::init_started);
    const auto owned = declared_components(config);
    const auto comps = view(owned);
    check_targets(comps);
    Intent intent = new_intent("init");
    intent.staging = staging_strings(comps);
    intent.targets = target_strings(comps);
    intent.to = rc.engine.str();
    intent.state_id = new_state_id();
    inst.write_intent(intent);

    Marker m;
    m.app = config.app_name;
    m.version = rc.engine.str();
    m.state_id = intent.state_id;
    m.origin = "init";
    add_history(m, "init", "", rc.engine.str(), config.hook_init.empty() ? "empty state" : config.hook_init.front());
    try {
        // The init hook runs as the app's user, and what it leaves becomes the app's state:
        // staging is the user's, and parents bartld creates let the user reach it.
        const auto new_parents = missing_parents(config);
        const Owner owner = app_owner(config);
        for (const auto* c : comps) c->prepare_staging(owner);
        // A database is built in place, so it carries the new state ID before the init hook
        // writes into it: never a database with the hook's tables and no identity.
        for (const auto* c : comps)
            if (!c->tree()) c->bind_staging(m.state_id);
        give_to_app_user(config, {}, new_parents);
        auto env = hook_env(config, rc.engine.str(), "");
        std::string all;
        for (const auto* c : comps) {
            if (!c->tree()) continue;
            if (!env.count("BARTL_STAGING")) env["BARTL_STAGING"] = c->staging_path().string();
            all += (all.empty() ? "" : ":") + c->staging_path().string();
        }
        env["BARTL_STAGING_PATHS"] = all;
        run_hook(config, "init", config.hook_init, env, rc.ctx.cancel);
        bind_sync_commit(comps, m.state_id);
        for (const auto* c : comps) m.components.push_back(c->record());
        inst.write_marker(m);
    } catch (...) {
        rollback_uncommitted(config, comps);
        throw;
    }
    inst.clear_intent();
    log::write(log::Level::notice,
               fmt::format("init of {} at {} finished: state ID {}", config.instance, rc.engine.str(), m.state_id), {},
               event::init_finished);
}

void do_clean_partial(const Config& config, const Intent& intent) {
    Instance inst(config);
    log::warn(fmt::format("cleaning up an interrupted {} started {} by PID {} (intent {})", intent.op, intent.started,
                          intent.pid, inst.intent_path().string()));
    for (const auto& s : intent.staging) fs::remove_tree(s);
    // The targets were missing or empty when the operation started (the foreign-state check
    // ran first), so whatever is in them now was put there by bartl.
    const auto declared = declared_components(config);
    for (const auto& t : intent.targets) {
        if (!t.empty() && t.front() == '/') {
            fs::remove_tree(t);
            continue;
        }
        // A database, by its id: its restore staging and the database itself dropped through
        // its component (the intent holds no connection).
        const Component* c = nullptr;
        for (const auto& d : declared)
            if (d->id() == t) c = d.get();
        if (!c)
            throw ConfigError(fmt::format("the interrupted {} (intent {}) created {}, which the configuration no "
                                          "longer declares: declare it again so bartld can remove it, or remove it "
                                          "by hand and delete the intent",
                                          intent.op, inst.intent_path().string(), t));
        c->discard_staging();
        c->remove_target();
    }
    inst.clear_intent();
}

}  // namespace bartl
