// The decision table, exhaustively: every StateFact x BackupFact x engine-vs-state x
// backup-vs-engine x every combination of the present-state details and configuration
// flags, checked against an expected table written out by hand from bartl(7), not derived
// from the implementation.
#include <catch2/catch.hpp>

#include <map>
#include <stdexcept>
#include <string>

#include "core/decision.hpp"

using namespace bartl;

namespace {

const char* state_name(StateFact s) {
    switch (s) {
    case StateFact::absent: return "absent";
    case StateFact::present: return "present";
    case StateFact::partial: return "partial";
    case StateFact::foreign: return "foreign";
    case StateFact::not_mounted: return "not_mounted";
    case StateFact::incomplete: return "incomplete";
    }
    return "?";
}

const char* backup_name(BackupFact b) {
    switch (b) {
    case BackupFact::none: return "none";
    case BackupFact::available: return "available";
    case BackupFact::all_rejected: return "all_rejected";
    case BackupFact::unreachable: return "unreachable";
    case BackupFact::not_a_store: return "not_a_store";
    case BackupFact::pin_missing: return "pin_missing";
    }
    return "?";
}

// Relation of a version to the engine: "older", "equal", "newer".
const std::map<std::string, std::string> versions_vs_engine = {
    {"older", "2.0.0-rc.1"},     // a pre-release of the engine's version is older
    {"equal", "2.0.0+build.7"},  // build metadata does not count
    {"newer", "2.0.1"},
};
const char* engine_text = "2.0.0";

struct Flags {
    bool legacy, fresh, undeclared, claim_due, in_progress, store, before_migrate;
};

// After a fresh state (init or restore): its claim when a store is configured, then by age.
std::string after_new_state(const std::string& age, const Flags& f) {
    if (age == "newer") return "refuse_downgrade";  // nothing more is touched
    std::string p = f.store ? "take_over -> " : "";
    if (age == "equal") return p + "serve";
    return p + (f.store && f.before_migrate ? "backup_before_migrate -> " : "") + "migrate -> serve";
}

// Expected path when no local state exists, by backup fact (and backup age when available).
std::string expected_absent(const std::string& backup, const std::string& backup_age, const Flags& f) {
    static const std::map<std::string, std::string> failures = {
        {"unreachable", "fail_unreachable"},
        {"not_a_store", "fail_not_a_store"},
        {"all_rejected", "fail_all_rejected"},
        {"pin_missing", "fail_pin_missing"},
    };
    if (backup == "none") return "init -> " + after_new_state("equal", f);
    if (backup == "available") return "restore -> " + after_new_state(backup_age, f);
    return failures.at(backup);
}

std::string expected_present(const std::string& state_age, const Flags& f) {
    if (state_age == "newer") return "refuse_downgrade";  // a downgrade touches nothing
    if (f.undeclared) return "refuse_undeclared";
    std::string p;
    if (f.legacy) p += "upgrade_marker -> ";
    if (f.fresh) p += "add_components -> ";
    if (f.claim_due) p += "take_over -> ";
    if (state_age == "equal") return p + "serve";
    if (f.store && f.before_migrate && !f.in_progress) p += "backup_before_migrate -> ";
    return p + "migrate -> serve";
}

std::string expected_path(const std::string& state, const std::string& backup, const std::string& state_age,
                          const std::string& backup_age, const Flags& f) {
    if (state == "present") return expected_present(state_age, f);
    if (state == "foreign") return "refuse_foreign";
    if (state == "not_mounted") return "fail_not_mounted";
    if (state == "incomplete") return "fail_incomplete";
    if (state == "partial") return "clean_partial -> " + expected_absent(backup, backup_age, f);
    return expected_absent(backup, backup_age, f);
}

std::string first_action(const std::string& path) { return path.substr(0, path.find(' ')); }

}  // namespace

TEST_CASE("decision: exhaustive table of decide() and predict_path()", "[decision]") {
    const StateFact states[] = {StateFact::absent,  StateFact::present,     StateFact::partial,
                                StateFact::foreign, StateFact::not_mounted, StateFact::incomplete};
    const BackupFact backups[] = {BackupFact::none,        BackupFact::available,   BackupFact::all_rejected,
                                  BackupFact::unreachable, BackupFact::not_a_store, BackupFact::pin_missing};
    int combinations = 0;
    for (const StateFact s : states)
        for (const BackupFact b : backups)
            for (const auto& [state_age, state_text] : versions_vs_engine)
                for (const auto& [backup_age, backup_text] : versions_vs_engine)
                    for (unsigned bits = 0; bits < 128; ++bits) {
                        const Flags fl{bool(bits & 1),  bool(bits & 2),  bool(bits & 4),  bool(bits & 8),
                                       bool(bits & 16), bool(bits & 32), bool(bits & 64)};
                        Observed o;
                        o.state = s;
                        o.engine = Version::parse(engine_text);
                        // state_version is only meaningful when present; others carry one too, to
                        // prove it is ignored there.
                        o.state_version = Version::parse(state_text);
                        o.backup = b;
                        o.backup_version = Version::parse(backup_text);
                        o.backup_id = "abc12345";
                        o.marker_legacy = fl.legacy;
                        o.components_new = fl.fresh;
                        o.components_undeclared = fl.undeclared;
                        o.writer_claim_due = fl.claim_due;
                        o.migration_in_progress = fl.in_progress;
                        o.store_configured = fl.store;
                        o.before_migrate = fl.before_migrate;

                        const std::string expected =
                            expected_path(state_name(s), backup_name(b), state_age, backup_age, fl);
                        INFO("state=" << state_name(s) << " backup=" << backup_name(b) << " state is " << state_age
                                      << " backup is " << backup_age << " flags=" << bits << " -> expected "
                                      << expected);

                        const Decision d = decide(o);
                        CHECK(action_name(d.action) == first_action(expected));
                        CHECK_FALSE(d.reason.empty());
                        CHECK(d.reason.find('\n') == std::string::npos);

                        const auto path = predict_path(o);
                        CHECK(format_path(path) == expected);
                        REQUIRE_FALSE(path.empty());
                        CHECK(path.front() == d.action);
                        CHECK(is_terminal(path.back()));
                        for (std::size_t i = 0; i + 1 < path.size(); ++i) CHECK_FALSE(is_terminal(path[i]));

                        if (s != StateFact::present) {  // without a state_version the outcome is the same
                            Observed no_version = o;
                            no_version.state_version.reset();
                            CHECK(decide(no_version).action == d.action);
                            CHECK(format_path(predict_path(no_version)) == expected);
                        }
                        ++combinations;
                    }
    CHECK(combinations == 6 * 6 * 3 * 3 * 128);
}

TEST_CASE("decision: reasons name the versions and the backup", "[decision]") {
    Observed o;
    o.engine = Version::parse("1.0.0");
    o.state = StateFact::present;
    o.state_version = Version::parse("2.0.0");
    Decision d = decide(o);
    CHECK(d.action == Action::refuse_downgrade);
    CHECK(d.reason.rfind("state 2.0.0 is newer than engine 1.0.0: downgrade refused", 0) == 0);

    o.state_version = Version::parse("0.9.0");
    d = decide(o);
    CHECK(d.action == Action::migrate);
    CHECK(d.reason.find("0.9.0") != std::string::npos);
    CHECK(d.reason.find("1.0.0") != std::string::npos);

    o.store_configured = true;
    d = decide(o);
    CHECK(d.action == Action::backup_before_migrate);
    CHECK(d.reason.find("the way back") != std::string::npos);

    o.components_undeclared = true;
    CHECK(decide(o).reason.find("bartlctl forget") != std::string::npos);

    o.state = StateFact::absent;
    o.state_version.reset();
    o.backup = BackupFact::available;
    o.backup_version = Version::parse("0.8.0");
    o.backup_id = "f00dbabe";
    d = decide(o);
    CHECK(d.action == Action::restore);
    CHECK(d.reason.find("f00dbabe") != std::string::npos);
    CHECK(d.reason.find("0.8.0") != std::string::npos);

    o.backup = BackupFact::pin_missing;
    o.backup_id = "pinned-id-42";
    d = decide(o);
    CHECK(d.action == Action::fail_pin_missing);
    CHECK(d.reason.find("pinned-id-42") != std::string::npos);

    o.backup = BackupFact::not_a_store;
    CHECK(decide(o).reason.find("--init-store") != std::string::npos);

    o.state = StateFact::foreign;
    CHECK(decide(o).reason.find("bartlctl adopt") != std::string::npos);
    o.state = StateFact::not_mounted;
    CHECK(decide(o).reason.find("not mounted") != std::string::npos);
}

TEST_CASE("decision: inconsistent facts", "[decision]") {
    Observed o;
    o.engine = Version::parse("1.0.0");
    o.state = StateFact::present;  // without state_version
    CHECK_THROWS_AS(decide(o), std::logic_error);
    CHECK_THROWS_AS(predict_path(o), std::logic_error);

    // decide() stays total for a restore candidate of unknown version; only the
    // prediction, which needs the version, refuses.
    o.state = StateFact::absent;
    o.backup = BackupFact::available;
    o.backup_id = "x";
    const Decision d = decide(o);
    CHECK(d.action == Action::restore);
    CHECK(d.reason.find("unknown") != std::string::npos);
    CHECK_THROWS_AS(predict_path(o), std::logic_error);
}

TEST_CASE("decision: action names, operator words and terminality", "[decision]") {
    const std::map<Action, std::tuple<std::string, std::string, bool>> expected = {
        {Action::serve, {"serve", "serve", true}},
        {Action::init, {"init", "init (fresh install)", false}},
        {Action::restore, {"restore", "restore", false}},
        {Action::migrate, {"migrate", "migrate", false}},
        {Action::backup_before_migrate, {"backup_before_migrate", "back up (pre-migration)", false}},
        {Action::clean_partial, {"clean_partial", "clean up interrupted work", false}},
        {Action::upgrade_marker, {"upgrade_marker", "record state identity", false}},
        {Action::add_components, {"add_components", "add new components", false}},
        {Action::take_over, {"take_over", "take over the store", false}},
        {Action::refuse_downgrade, {"refuse_downgrade", "refuse: downgrade", true}},
        {Action::refuse_foreign, {"refuse_foreign", "refuse: foreign data", true}},
        {Action::refuse_undeclared, {"refuse_undeclared", "refuse: component no longer declared", true}},
        {Action::fail_unreachable, {"fail_unreachable", "fail: store unreachable", true}},
        {Action::fail_not_a_store, {"fail_not_a_store", "fail: not a bartl store", true}},
        {Action::fail_all_rejected, {"fail_all_rejected", "fail: every backup rejected", true}},
        {Action::fail_pin_missing, {"fail_pin_missing", "fail: pinned backup not in the store", true}},
        {Action::fail_not_mounted, {"fail_not_mounted", "fail: filesystem not mounted", true}},
        {Action::fail_incomplete, {"fail_incomplete", "fail: state incomplete", true}},
    };
    for (const auto& [a, e] : expected) {
        CHECK(action_name(a) == std::get<0>(e));
        CHECK(action_label(a) == std::get<1>(e));
        CHECK(is_terminal(a) == std::get<2>(e));
    }
    CHECK(format_path({}) == "");
    CHECK(format_path({Action::serve}) == "serve");
    CHECK(format_path({Action::init, Action::serve}) == "init -> serve");
    CHECK(path_words_from_names("init -> take_over -> serve") == "init (fresh install) -> take over the store -> serve");
    CHECK(path_words_from_names("refuse_downgrade") == "refuse: downgrade");
    CHECK(path_words_from_names("restore -> from_a_newer_bartl -> serve") == "restore -> from_a_newer_bartl -> serve");
    CHECK(path_words_from_names("") == "");
    for (int a = 0; a <= static_cast<int>(Action::fail_incomplete); ++a)
        CHECK(path_words_from_names(action_name(static_cast<Action>(a))) == action_label(static_cast<Action>(a)));
    CHECK(format_path_words({Action::backup_before_migrate, Action::migrate, Action::serve}) ==
          "back up (pre-migration) -> migrate -> serve");
}
