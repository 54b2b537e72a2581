// judge_database() (state/db_judge.hpp): every combination of the facts a database gives,
// whether the marker records it and whether there is a marker, against the table in its
// doc comment; the staging database names of restores (state/database_impl.hpp).
#include <catch2/catch.hpp>

#include "state/database_impl.hpp"
#include "state/db_judge.hpp"

using namespace bartl;

namespace {

const std::string ours = "0123456789abcdef0123456789abcdef";
const std::string other = "fedcba9876543210fedcba9876543210";

/// What the table in db_judge.hpp says for one combination.
ComponentFinding expected(bool exists, bool data, const std::string& carried, bool recorded,
                          const std::string& marker_id) {
    const std::string seen = exists ? carried : "";
    if (!marker_id.empty() && seen == marker_id) return ComponentFinding::ours;
    if (exists && data) return ComponentFinding::foreign;
    if (!recorded) return ComponentFinding::fresh;
    return ComponentFinding::lost;
}

}  // namespace

TEST_CASE("every combination of database facts gets the finding of the table", "[db_judge]") {
    for (bool exists : {false, true})
        for (bool data : {false, true})
            for (const std::string& carried : {std::string(), ours, other})
                for (bool recorded : {false, true})
                    for (const std::string& marker_id : {std::string(), ours}) {
                        CAPTURE(exists, data, carried, recorded, marker_id);
                        const auto o = judge_database("postgresql:notes", {exists, data, carried}, recorded, marker_id);
                        CHECK(o.finding == expected(exists, data, carried, recorded, marker_id));
                        CHECK(o.carried_id == (exists ? carried : ""));
                        CHECK(o.finding != ComponentFinding::not_mounted);
                        CHECK(o.detail.rfind("postgresql:notes", 0) == 0);
                    }
}

TEST_CASE("the details name the proof an operator needs", "[db_judge]") {
    CHECK(judge_database("postgresql:notes", {true, true, ours}, true, ours).detail ==
          "postgresql:notes: carries state ID " + ours);
    CHECK(judge_database("postgresql:notes", {true, false, ours}, true, ours).finding == ComponentFinding::ours);
    CHECK(judge_database("mariadb:notes", {true, true, ""}, false, "").detail ==
          "mariadb:notes holds tables (no state ID) and there is no marker");
    CHECK(judge_database("mariadb:notes", {true, true, other}, true, ours).detail ==
          "mariadb:notes holds tables with state ID " + other + ", not the marker's state ID " + ours);
    CHECK(judge_database("sqlite:/x.db", {true, false, ""}, false, "").detail == "sqlite:/x.db exists with no tables");
    CHECK(judge_database("sqlite:/x.db", {false, false, ""}, false, "").detail == "sqlite:/x.db does not exist");
    CHECK(judge_database("postgresql:n", {false, false, ""}, true, ours).detail ==
          "postgresql:n does not exist (no state ID): state lost");
    CHECK(judge_database("postgresql:n", {true, false, other}, true, ours).detail ==
          "postgresql:n exists with no tables (state ID " + other + "): state lost");
}

TEST_CASE("an empty database carrying another state's ID is not foreign", "[db_judge]") {
    // No data to protect: a leftover of another state (or a dropped and recreated database)
    // is free to create without a marker record, and lost with one.
    CHECK(judge_database("postgresql:n", {true, false, other}, false, ours).finding == ComponentFinding::fresh);
    CHECK(judge_database("postgresql:n", {true, false, other}, true, ours).finding == ComponentFinding::lost);
}

TEST_CASE("without a marker no carried ID makes a database ours", "[db_judge]") {
    // An empty marker ID never matches an empty carried ID.
    CHECK(judge_database("postgresql:n", {true, true, ""}, false, "").finding == ComponentFinding::foreign);
    CHECK(judge_database("postgresql:n", {true, false, ""}, false, "").finding == ComponentFinding::fresh);
}

TEST_CASE("a restore's staging database name fits the server's limit and never collides", "[db_judge]") {
    CHECK(staging_database_name("notes", 63) == "notes__bartl_restore");
    const std::string fits(63 - 15, 'n');
    CHECK(staging_database_name(fits, 63) == fits + "__bartl_restore");
    // One longer: a prefix, a hash of the whole name, the suffix; exactly the limit.
    const std::string a = fits + "a", b = fits + "b";
    for (std::size_t max : {63u, 64u}) {
        CAPTURE(max);
        const auto sa = staging_database_name(a + std::string(max - 63, 'x'), max);
        CHECK(sa.size() == max);
        CHECK(sa.rfind(fits.substr(0, max - 15 - 9), 0) == 0);
        CHECK(sa.substr(sa.size() - 15) == "__bartl_restore");
        CHECK(sa != staging_database_name(b + std::string(max - 63, 'x'), max));
    }
    const std::string longest(63, 'q');
    CHECK(staging_database_name(longest, 63).size() == 63);
    CHECK(staging_database_name(longest, 63) != longest);
}
