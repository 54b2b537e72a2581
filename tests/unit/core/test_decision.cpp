// The decision table, exhaustively: every StateFact x BackupFact x engine-vs-state
// x backup-vs-engine, checked against an expected table written out by hand
// from bartl(7), not derived from the implementation.
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
    }
    return "?";
}

const char* backup_name(BackupFact b) {
    switch (b) {
    case BackupFact::none: return "none";
    case BackupFact::available: return "available";
    case BackupFact::all_rejected: return "all_rejected";
    case BackupFact::unreachable: return "unreachable";
    case BackupFact::pin_missing: return "pin_missing";
    }
    return "?";
}

// Relation of a version to the engine: "older", "equal", "newer".
const std::map<std::string, std::string> versions_vs_engine = {
    {"older", "2.0.0-rc.1"},   // a pre-release of the engine's version is older
    {"equal", "2.0.0+build.7"},  // build metadata does not count
    {"newer", "2.0.1"},
};
const char* engine_text = "2.0.0";

// Expected path when no local state exists, by backup fact (and backup age when available).
std::string expected_absent(const std::string& backup, const std::string& backup_vs_engine) {
    static const std::map<std::string, std::string> by_fact = {
        {"none", "init -> serve"},
        {"unreachable", "fail_unreachable"},
        {"all_rejected", "fail_all_rejected"},
        {"pin_missing", "fail_pin_missing"},
    };
    static const std::map<std::string, std::string> restore_by_age = {
        {"older", "restore -> migrate -> serve"},  // out-of-place upgrade
        {"equal", "restore -> serve"},             // disaster recovery
        {"newer", "restore -> refuse_downgrade"},  // backup from a newer engine
    };
    return backup == "available" ? restore_by_age.at(backup_vs_engine) : by_fact.at(backup);
}

std::string expected_path(const std::string& state, const std::string& backup, const std::string& state_vs_engine,
                          const std::string& backup_vs_engine) {
    if (state == "present") {
        static const std::map<std::string, std::string> by_state_age = {
            {"older", "migrate -> serve"},   // in-place upgrade
            {"equal", "serve"},              // reboot
            {"newer", "refuse_downgrade"},   // downgrade attempt
        };
        return by_state_age.at(state_vs_engine);
    }
    if (state == "foreign") return "refuse_foreign";
    if (state == "partial") return "clean_partial -> " + expected_absent(backup, backup_vs_engine);
    return expected_absent(backup, backup_vs_engine);
}

std::string first_action(const std::string& path) { return path.substr(0, path.find(' ')); }

}  // namespace

TEST_CASE("decision: exhaustive table of decide() and predict_path()", "[decision]") {
    const StateFact states[] = {StateFact::absent, StateFact::present, StateFact::partial, StateFact::foreign};
    const BackupFact backups[] = {BackupFact::none, BackupFact::available, BackupFact::all_rejected,
                                  BackupFact::unreachable, BackupFact::pin_missing};
    int combinations = 0;
    for (const StateFact s : states)
        for (const BackupFact b : backups)
            for (const auto& [state_age, state_text] : versions_vs_engine)
                for (const auto& [backup_age, backup_text] : versions_vs_engine) {
                    Observed o;
                    o.state = s;
                    o.engine = Version::parse(engine_text);
                    // state_version is only meaningful when present; others carry one too, to
                    // prove it is ignored there.
                    o.state_version = Version::parse(state_text);
                    o.backup = b;
                    o.backup_version = Version::parse(backup_text);
                    o.backup_id = "notes-20261130T030904Z-" + backup_text + "-abc123";

                    const std::string expected =
                        expected_path(state_name(s), backup_name(b), state_age, backup_age);
                    INFO("state=" << state_name(s) << " backup=" << backup_name(b) << " state is " << state_age
                                  << " backup is " << backup_age << " -> expected " << expected);

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
    CHECK(combinations == 4 * 5 * 3 * 3);
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

    o.state = StateFact::absent;
    o.state_version.reset();
    o.backup = BackupFact::available;
    o.backup_version = Version::parse("0.8.0");
    o.backup_id = "notes-20260101T000000Z-0.8.0-f00d";
    d = decide(o);
    CHECK(d.action == Action::restore);
    CHECK(d.reason.find("notes-20260101T000000Z-0.8.0-f00d") != std::string::npos);
    CHECK(d.reason.find("0.8.0") != std::string::npos);

    o.backup = BackupFact::pin_missing;
    o.backup_id = "pinned-id-42";
    d = decide(o);
    CHECK(d.action == Action::fail_pin_missing);
    CHECK(d.reason.find("pinned-id-42") != std::string::npos);

    o.state = StateFact::foreign;
    CHECK(decide(o).reason.find("bartlctl adopt") != std::string::npos);
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

TEST_CASE("decision: action names and terminality", "[decision]") {
    const std::map<Action, std::pair<std::string, bool>> expected = {
        {Action::serve, {"serve", true}},
        {Action::init, {"init", false}},
        {Action::restore, {"restore", false}},
        {Action::migrate, {"migrate", false}},
        {Action::clean_partial, {"clean_partial", false}},
        {Action::refuse_downgrade, {"refuse_downgrade", true}},
        {Action::refuse_foreign, {"refuse_foreign", true}},
        {Action::fail_unreachable, {"fail_unreachable", true}},
        {Action::fail_all_rejected, {"fail_all_rejected", true}},
        {Action::fail_pin_missing, {"fail_pin_missing", true}},
    };
    for (const auto& [a, e] : expected) {
        CHECK(action_name(a) == e.first);
        CHECK(is_terminal(a) == e.second);
    }
    CHECK(format_path({}) == "");
    CHECK(format_path({Action::serve}) == "serve");
    CHECK(format_path({Action::init, Action::serve}) == "init -> serve");
}
