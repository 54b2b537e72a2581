// The pure parts of the catalog (ops/catalog.hpp): blob names and the order a restore tries
// backups in, with the clock sanity of issue "observed facts" item 9.
#include <catch2/catch.hpp>

#include "core/time.hpp"
#include "ops/catalog.hpp"

using namespace bartl;
using namespace std::chrono;

TEST_CASE("blob names: time, version and id from the name", "[catalog]") {
    auto r = parse_blob_name("notes", "notes-20261130T030904Z-2.1.0-rc.1-3f9a0c1d.tar.zst");
    REQUIRE(r);
    CHECK(r->version == "2.1.0-rc.1");
    CHECK(r->id == "3f9a0c1d");
    CHECK(format_rfc3339(r->created) == "2026-11-30T03:09:04Z");
    CHECK_FALSE(r->encrypted);
    r = parse_blob_name("my-app", "my-app-20261130T030904Z-1.0.0+b.2-abc.tar.zst.age");
    REQUIRE(r);
    CHECK(r->version == "1.0.0+b.2");
    CHECK(r->encrypted);
    for (const char* bad : {"notes-20261130T030904Z-2.1.0-3f9a0c1d.tar", "other-20261130T030904Z-2.1.0-3f9a.tar.zst",
                            "notes-2026113T030904Z-2.1.0-3f9a.tar.zst", "notes-20261130T030904Z--3f9a.tar.zst",
                            "notes-20261130T030904Z-2.1.0-X_Z.tar.zst", "notes-20261130T030904Z-2.1.0-.tar.zst",
                            "notes-extra-20261130T030904Z-1.0.0-ab.tar.zst", "bartl-store.json"}) {
        INFO(bad);
        CHECK_FALSE(parse_blob_name("notes", bad));
    }
}

TEST_CASE("restore order: newest first; a future-dated backup never wins", "[catalog]") {
    const auto now = sys_seconds(seconds(1'800'000'000));
    auto ref = [](const char* id, sys_seconds t) {
        BackupRef r;
        r.id = id;
        r.blob_name = std::string("notes-x-") + id;
        r.created = t;
        return r;
    };
    std::vector<BackupRef> refs = {ref("old", now - hours(48)), ref("future", now + hours(24 * 365)),
                                   ref("new", now - minutes(1)), ref("skewed", now + minutes(4)),
                                   ref("far", now + hours(2))};
    std::vector<std::string> ids;
    for (const auto& r : restore_order(refs, now)) ids.push_back(r.id);
    // Within the 5 min allowed skew counts as now; beyond it, last, least far first.
    CHECK(ids == std::vector<std::string>{"skewed", "new", "old", "far", "future"});
    // Same second: the commit time decides, then the name.
    auto a = ref("a", now), b = ref("b", now);
    a.modified = system_clock::time_point(seconds(10));
    b.modified = system_clock::time_point(seconds(20));
    ids.clear();
    for (const auto& r : restore_order({a, b}, now)) ids.push_back(r.id);
    CHECK(ids == std::vector<std::string>{"b", "a"});
}
