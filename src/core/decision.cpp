// The startup decision table (bartl(7), top). Every reason is one line an
// operator reads in the journal and in STATUS=, so it names the versions and
// backup ids involved and, for refusals and failures, the way out.
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
    if (c == 0) return {Action::serve, "state " + state + " matches engine " + engine + ": serving"};
    if (c > 0)
        return {Action::migrate, "engine " + engine + " is newer than state " + state + ": migrating " + state +
                                     " -> " + engine};
    return {Action::refuse_downgrade,
            "state " + state + " is newer than engine " + engine +
                ": downgrade refused; install engine " + state +
                " or newer, or move the state away and restore an older backup with --restore-from ID"};
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

}  // namespace

const char* action_name(Action a) noexcept {
    switch (a) {
    case Action::serve: return "serve";
    case Action::init: return "init";
    case Action::restore: return "restore";
    case Action::migrate: return "migrate";
    case Action::clean_partial: return "clean_partial";
    case Action::refuse_downgrade: return "refuse_downgrade";
    case Action::refuse_foreign: return "refuse_foreign";
    case Action::fail_unreachable: return "fail_unreachable";
    case Action::fail_all_rejected: return "fail_all_rejected";
    case Action::fail_pin_missing: return "fail_pin_missing";
    }
    return "unknown";
}

bool is_terminal(Action a) noexcept {
    switch (a) {
    case Action::init:
    case Action::restore:
    case Action::migrate:
    case Action::clean_partial: return false;
    default: return true;
    }
}

Decision decide(const Observed& o) {
    switch (o.state) {
    case StateFact::present: return decide_present(o);
    case StateFact::absent: return decide_absent(o);
    case StateFact::partial:
        // The intent record proves the data is bartl's own half-done work
        // (invariant 2), so it is removed whatever the store says.
        return {Action::clean_partial,
                "half-done init/restore found (intent record present, no marker): removing bartl's partial "
                "state and retrying"};
    case StateFact::foreign:
        return {Action::refuse_foreign,
                "declared state paths hold data without a bartl marker or intent: refusing to touch it; if it is "
                "this app's data, run `bartlctl adopt VERSION` with the version that wrote it (engine is " +
                    o.engine.str() + ")"};
    }
    throw std::logic_error("decide: unknown StateFact");
}

std::vector<Action> predict_path(const Observed& o) {
    // The longest legal path is clean_partial -> restore -> migrate -> serve;
    // more steps than there are actions means the table loops, a programming error.
    constexpr std::size_t max_steps = 10;
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
            break;
        case Action::restore:
            if (!cur.backup_version)
                throw std::logic_error("predict_path: restore of backup " + backup_label(cur) +
                                       " predicted without backup_version");
            cur.state = StateFact::present;
            cur.state_version = cur.backup_version;
            break;
        case Action::migrate:
            cur.state_version = cur.engine;
            break;
        case Action::clean_partial:
            cur.state = StateFact::absent;
            cur.state_version.reset();
            break;
        default:
            break;
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

}  // namespace bartl
