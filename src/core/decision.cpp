// The startup decision table (bartl(7) "THE DECISION TABLE"). Every reason is one line an
// operator reads in the journal and in STATUS=, so it names the versions and backup ids
// involved and, for refusals and failures, the way out.
#include "core/decision.hpp"

#include <stdexcept>

namespace bartl {
namespace {

std::string backup_label(const Observed& o) {
    return o.backup_id.empty() ? std::string("(no id)") : o.backup_id;
}

Decision decide_present(const Observed& o) {
    if (!o.state_version)
        throw std::logic_error("decide: state is present but state_version is not set");
    const std::string state = o.state_version->str();
    const std::string engine = o.engine.str();
    const int c = compare(o.engine, *o.state_version);
    // A downgrade touches nothing, so it is refused before any bookkeeping step.
    if (c < 0)
        return {Action::refuse_downgrade,
                "state " + state + " is newer than engine " + engine +
                    ": downgrade refused; install engine " + state +
                    " or newer, or move the state away and restore an older backup with --restore-from ID"};
    if (o.components_undeclared)
        return {Action::refuse_undeclared,
                "the state marker records a component the configuration no longer declares: refusing to drop it "
                "silently; declare it again, or record its removal with `bartlctl forget COMPONENT`"};
    if (o.marker_legacy)
        return {Action::upgrade_marker,
                "state " + state + " has a marker without state IDs (an older bartl): binding its components to a "
                "new state ID"};
    if (o.components_new)
        return {Action::add_components, "the configuration declares components the state does not have yet: "
                                        "creating them for state " + state};
    if (o.writer_claim_due)
        return {Action::take_over, "state " + state + " is new here: claiming the store as its writer before "
                                   "serving (another writer, if any, is fenced)"};
    if (c == 0) return {Action::serve, "state " + state + " matches engine " + engine + ": serving"};
    if (o.before_migrate && o.store_configured && !o.migration_in_progress)
        return {Action::backup_before_migrate, "engine " + engine + " is newer than state " + state +
                                                   ": backing up state " + state + " before migrating (the way back)"};
    return {Action::migrate, "engine " + engine + " is newer than state " + state + ": migrating " + state + " -> " +
                                 engine};
}

Decision decide_absent(const Observed& o) {
    switch (o.backup) {
    case BackupFact::available:
        return {Action::restore,
                "no local state: restoring backup " + backup_label(o) + " (state " +
                    (o.backup_version ? o.backup_version->str() : std::string("version unknown")) + ", engine " +
                    o.engine.str() + ")"};
    case BackupFact::none:
        return {Action::init, "no local state and no backup for this app: fresh install at engine " +
                                  o.engine.str()};
    case BackupFact::unreachable:
        return {Action::fail_unreachable,
                "no local state and the backup store is unreachable or denied the listing: no fresh start over "
                "possibly lost data; retrying later"};
    case BackupFact::not_a_store:
        return {Action::fail_not_a_store,
                "no local state and the store location holds no bartl store identity (unmounted disk, wrong bucket "
                "or prefix?): no fresh start over possibly lost data; if it is a new store, run `bartld "
                "--init-store` once"};
    case BackupFact::all_rejected:
        return {Action::fail_all_rejected,
                "no local state and every backup failed verification or decryption: no fresh start over lost "
                "data; check the store and the encryption identity"};
    case BackupFact::pin_missing:
        return {Action::fail_pin_missing,
                "no local state and the pinned backup " + backup_label(o) +
                    " is not in the store: check the id with `bartlctl backups`, or drop --restore-from"};
    }
    throw std::logic_error("decide: unknown BackupFact");
}

/// A state init or restore just committed: all declared components, a new state ID that
/// owes the store its writer claim, no migration begun.
void fresh_state(Observed& o) {
    o.marker_legacy = false;
    o.components_new = false;
    o.components_undeclared = false;
    o.writer_claim_due = o.store_configured;
    o.migration_in_progress = false;
}

}  // namespace

const char* action_name(Action a) noexcept {
    switch (a) {
    case Action::serve: return "serve";
    case Action::init: return "init";
    case Action::restore: return "restore";
    case Action::migrate: return "migrate";
    case Action::backup_before_migrate: return "backup_before_migrate";
    case Action::clean_partial: return "clean_partial";
    case Action::upgrade_marker: return "upgrade_marker";
    case Action::add_components: return "add_components";
    case Action::take_over: return "take_over";
    case Action::refuse_downgrade: return "refuse_downgrade";
    case Action::refuse_foreign: return "refuse_foreign";
    case Action::refuse_undeclared: return "refuse_undeclared";
    case Action::fail_unreachable: return "fail_unreachable";
    case Action::fail_not_a_store: return "fail_not_a_store";
    case Action::fail_all_rejected: return "fail_all_rejected";
    case Action::fail_pin_missing: return "fail_pin_missing";
    case Action::fail_not_mounted: return "fail_not_mounted";
    case Action::fail_incomplete: return "fail_incomplete";
    }
    return "unknown";
}

const char* action_label(Action a) noexcept {
    switch (a) {
    case Action::serve: return "serve";
    case Action::init: return "init (fresh install)";
    case Action::restore: return "restore";
    case Action::migrate: return "migrate";
    case Action::backup_before_migrate: return "back up (pre-migration)";
    case Action::clean_partial: return "clean up interrupted work";
    case Action::upgrade_marker: return "record state identity";
    case Action::add_components: return "add new components";
    case Action::take_over: return "take over the store";
    case Action::refuse_downgrade: return "refuse: downgrade";
    case Action::refuse_foreign: return "refuse: foreign data";
    case Action::refuse_undeclared: return "refuse: component no longer declared";
    case Action::fail_unreachable: return "fail: store unreachable";
    case Action::fail_not_a_store: return "fail: not a bartl store";
    case Action::fail_all_rejected: return "fail: every backup rejected";
    case Action::fail_pin_missing: return "fail: pinned backup not in the store";
    case Action::fail_not_mounted: return "fail: filesystem not mounted";
    case Action::fail_incomplete: return "fail: state incomplete";
    }
    return "unknown";
}

bool is_terminal(Action a) noexcept {
    switch (a) {
    case Action::init:
    case Action::restore:
    case Action::migrate:
    case Action::backup_before_migrate:
    case Action::clean_partial:
    case Action::upgrade_marker:
    case Action::add_components:
    case Action::take_over: return false;
    default: return true;
    }
}

Decision decide(const Observed& o) {
    switch (o.state) {
    case StateFact::present: return decide_present(o);
    case StateFact::absent: return decide_absent(o);
    case StateFact::partial:
        // The intent record proves the data is bartl's own half-done work (invariant 2), so
        // it is removed whatever the store says.
        return {Action::clean_partial,
                "half-done init/restore found (intent record present, no marker): removing bartl's partial "
                "state and retrying"};
    case StateFact::foreign:
        return {Action::refuse_foreign,
                "declared state holds data bartl did not create (no marker, or not the marker's state ID): "
                "refusing to touch it; if it is this app's data, run `bartlctl adopt VERSION` with the version "
                "that wrote it (engine is " + o.engine.str() + ")"};
    case StateFact::not_mounted:
        return {Action::fail_not_mounted,
                "a state component is missing or empty and the filesystem that held it is not mounted: no restore "
                "onto the wrong filesystem; mount it (retrying later)"};
    case StateFact::incomplete:
        return {Action::fail_incomplete,
                "some state components are present and others lost: bartl will not mix a restored component "
                "with live ones; restore the lost one by hand, or move every component and the marker aside to "
                "restore all of them from a backup"};
    }
    throw std::logic_error("decide: unknown StateFact");
}

std::vector<Action> predict_path(const Observed& o) {
    // The longest legal path is clean_partial -> restore -> take_over -> backup_before_migrate
    // -> migrate -> serve; more steps than there are actions means the table loops.
    constexpr std::size_t max_steps = 12;
    Observed cur = o;
    std::vector<Action> path;
    for (;;) {
        const Action a = decide(cur).action;
        path.push_back(a);
        if (is_terminal(a)) return path;
        if (path.size() >= max_steps)
            throw std::logic_error("predict_path: no terminal action after " + std::to_string(max_steps) +
                                   " steps: " + format_path(path));
        switch (a) {
        case Action::init:
            cur.state = StateFact::present;
            cur.state_version = cur.engine;
            fresh_state(cur);
            break;
        case Action::restore:
            if (!cur.backup_version)
                throw std::logic_error("predict_path: restore of backup " + backup_label(cur) +
                                       " predicted without backup_version");
            cur.state = StateFact::present;
            cur.state_version = cur.backup_version;
            fresh_state(cur);
            break;
        case Action::backup_before_migrate: cur.migration_in_progress = true; break;
        case Action::migrate:
            cur.state_version = cur.engine;
            cur.migration_in_progress = false;
            break;
        case Action::clean_partial:
            cur.state = StateFact::absent;
            cur.state_version.reset();
            break;
        case Action::upgrade_marker: cur.marker_legacy = false; break;
        case Action::add_components: cur.components_new = false; break;
        case Action::take_over: cur.writer_claim_due = false; break;
        default: break;
        }
    }
}

std::string format_path(const std::vector<Action>& path) {
    std::string s;
    for (const Action a : path) {
        if (!s.empty()) s += " -> ";
        s += action_name(a);
    }
    return s;
}

std::string format_path_words(const std::vector<Action>& path) {
    std::string s;
    for (const Action a : path) {
        if (!s.empty()) s += " -> ";
        s += action_label(a);
    }
    return s;
}

std::string path_words_from_names(const std::string& machine_path) {
    static constexpr Action kAll[] = {
        Action::serve, Action::init, Action::restore, Action::migrate, Action::backup_before_migrate,
        Action::clean_partial, Action::upgrade_marker, Action::add_components, Action::take_over,
        Action::refuse_downgrade, Action::refuse_foreign, Action::refuse_undeclared, Action::fail_unreachable,
        Action::fail_not_a_store, Action::fail_all_rejected, Action::fail_pin_missing, Action::fail_not_mounted,
        Action::fail_incomplete};
    const std::string sep = " -> ";
    std::string out;
    std::size_t at = 0;
    for (;;) {
        const auto end = machine_path.find(sep, at);
        const std::string name = machine_path.substr(at, end == std::string::npos ? std::string::npos : end - at);
        std::string word = name;
        for (const Action a : kAll)
            if (name == action_name(a)) word = action_label(a);
        if (!out.empty()) out += sep;
        out += word;
        if (end == std::string::npos) break;
        at = end + sep.size();
    }
    return out;
}

}  // namespace bartl
