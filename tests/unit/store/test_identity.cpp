// The store identity and writer record (store/identity.hpp) on a real file:// store:
// --init-store, "not a bartl store", takeover, fencing, and adopting an older bartl's store.
#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "core/store_identity.hpp"
#include "store/identity.hpp"
#include "store/store.hpp"
#include "store_contract.hpp"
#include "store_test_util.hpp"

using namespace bartl;
using namespace bartl::test;

namespace {

const std::string kA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const std::string kB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

std::unique_ptr<Store> file_store(const TempDir& tmp) { return open_store("file://" + tmp.path().string()); }

}  // namespace

TEST_CASE("store identity: a location without it is not a bartl store", "[identity]") {
    TempDir tmp;
    auto s = file_store(tmp);
    Context ctx;
    CHECK_THROWS_AS(read_store_identity(*s, ctx, "notes", "notes"), StoreNotInitialized);
    CHECK_THROWS_WITH(read_store_identity(*s, ctx, "notes", "notes-eu"),
                      Catch::Contains("not a bartl store") && Catch::Contains("bartld --instance notes-eu --init-store"));
    // The caller names the commands as the operator runs bartld (--config FILE).
    CHECK_THROWS_WITH(read_store_identity(*s, ctx, "notes", "notes", "`bartld --config /x.toml --init-store`"),
                      Catch::EndsWith("create its identity once with `bartld --config /x.toml --init-store`"));
    CHECK_THROWS_WITH(take_over_store(*s, ctx, "notes", "notes", "id", "`bartld --config /x.toml --init-store`"),
                      Catch::EndsWith("create its identity once with `bartld --config /x.toml --init-store`"));
    // Fencing needs an identity too: an empty (unmounted) location is never written to.
    CHECK_THROWS_AS(require_writer(*s, ctx, "notes", "notes", kA), StoreNotInitialized);
    CHECK_THROWS_AS(take_over_store(*s, ctx, "notes", "notes", kA), StoreNotInitialized);
    CHECK(listed_names(*s).empty());
}

TEST_CASE("store identity: --init-store creates it once, for one app", "[identity]") {
    TempDir tmp;
    auto s = file_store(tmp);
    Context ctx;
    const auto first = init_store(*s, ctx, "notes");
    CHECK(first.created);
    CHECK(first.identity.app == "notes");
    CHECK(first.identity.store_id.size() == 32);
    CHECK_FALSE(first.identity.writer);
    const auto again = init_store(*s, ctx, "notes");
    CHECK_FALSE(again.created);
    CHECK(again.identity.store_id == first.identity.store_id);
    const auto r = read_store_identity(*s, ctx, "notes", "notes");
    CHECK(r.identity.store_id == first.identity.store_id);
    // Another app's store is neither initialised over nor used.
    CHECK_THROWS_WITH(init_store(*s, ctx, "wiki"), Catch::Contains("belongs to app notes, not wiki"));
    CHECK_THROWS_AS(read_store_identity(*s, ctx, "wiki", "wiki"), StoreNotInitialized);
}

TEST_CASE("store identity: a damaged identity is an error, never taken as absent", "[identity]") {
    TempDir tmp;
    auto s = file_store(tmp);
    write_file(tmp / "bartl-store.json", "{ not json");
    CHECK_THROWS_WITH(read_store_identity(*s, Context{}, "notes", "notes"), Catch::Contains("is damaged"));
    CHECK_THROWS_WITH(init_store(*s, Context{}, "notes"), Catch::Contains("is damaged"));
    CHECK(read_file(tmp / "bartl-store.json") == "{ not json");
}

TEST_CASE("store identity: the first writer claims, a takeover fences the old one", "[identity]") {
    TempDir tmp;
    auto s = file_store(tmp);
    Context ctx;
    const auto store_id = init_store(*s, ctx, "notes").identity.store_id;
    // Host A: the first backup claims the unclaimed store.
    const auto a = require_writer(*s, ctx, "notes", "notes", kA);
    CHECK(a.store_id == store_id);
    CHECK(a.writer.state_id == kA);
    CHECK(a.writer.generation == 1);
    CHECK(require_writer(*s, ctx, "notes", "notes", kA).writer.generation == 1);  // no change
    // Host B restores and takes the store over.
    const auto b = take_over_store(*s, ctx, "notes", "notes-new", kB);
    CHECK(b.writer.state_id == kB);
    CHECK(b.writer.generation == 2);
    CHECK(b.writer.instance == "notes-new");
    // A is fenced, and the message names who has the store and what to do.
    CHECK_THROWS_AS(require_writer(*s, ctx, "notes", "notes", kA), FencedError);
    CHECK_THROWS_WITH(require_writer(*s, ctx, "notes", "notes", kA),
                      Catch::Contains("fenced") && Catch::Contains(kB) && Catch::Contains("generation 2") &&
                          Catch::Contains("systemctl disable --now bartld@notes"));
    CHECK(require_writer(*s, ctx, "notes", "notes-new", kB).writer.generation == 2);
    // Taking it back is an explicit takeover, generation 3.
    CHECK(take_over_store(*s, ctx, "notes", "notes", kA).writer.generation == 3);
    CHECK_THROWS_AS(require_writer(*s, ctx, "notes", "notes-new", kB), FencedError);
    const auto id = read_store_identity(*s, ctx, "notes", "notes").identity;
    REQUIRE(id.writer);
    CHECK(id.writer->state_id == kA);
    CHECK(id.store_id == store_id);
}

TEST_CASE("store identity: fenced_by() tells a fenced state from one read, never writing", "[identity]") {
    TempDir tmp;
    auto s = file_store(tmp);
    Context ctx;
    CHECK_THROWS_AS(fenced_by(*s, ctx, "notes", "notes", kA), StoreNotInitialized);
    init_store(*s, ctx, "notes");
    const auto unclaimed = read_file(tmp / "bartl-store.json");
    CHECK_FALSE(fenced_by(*s, ctx, "notes", "notes", kA));  // nobody claimed it yet: not claimed now either
    CHECK(read_file(tmp / "bartl-store.json") == unclaimed);
    require_writer(*s, ctx, "notes", "notes", kA);
    CHECK_FALSE(fenced_by(*s, ctx, "notes", "notes", kA));
    take_over_store(*s, ctx, "notes", "notes-new", kB);
    const auto taken = read_file(tmp / "bartl-store.json");
    const auto why = fenced_by(*s, ctx, "notes", "notes", kA);
    REQUIRE(why);
    // The same words as a refused backup's.
    try {
        require_writer(*s, ctx, "notes", "notes", kA);
        FAIL("not fenced");
    } catch (const FencedError& e) {
        CHECK(*why == e.what());
    }
    CHECK_FALSE(fenced_by(*s, ctx, "notes", "notes-new", kB));
    CHECK(read_file(tmp / "bartl-store.json") == taken);
    CHECK_THROWS_AS(fenced_by(*s, ctx, "other-app", "notes", kA), StoreNotInitialized);
}

TEST_CASE("store identity: an older bartl's store is adopted only when it holds this app's backups", "[identity]") {
    TempDir tmp;
    auto s = file_store(tmp);
    Context ctx;
    // Empty location (an unmounted disk): stays "not a bartl store" even for an upgraded state.
    CHECK_THROWS_AS(require_writer(*s, ctx, "notes", "notes", kA, /*adopt_legacy_store=*/true), StoreNotInitialized);
    CHECK(listed_names(*s).empty());
    // Another app's backups do not make it ours either.
    put_object(*s, "wiki-20260101T000000Z-1.0.0-aaaaaaaa.tar.zst.json", "{}");
    CHECK_THROWS_AS(require_writer(*s, ctx, "notes", "notes", kA, true), StoreNotInitialized);
    // This app's sidecars: an older bartl's store, given an identity and claimed.
    put_object(*s, "notes-20260101T000000Z-1.0.0-aaaaaaaa.tar.zst.json", "{}");
    CHECK_THROWS_AS(require_writer(*s, ctx, "notes", "notes", kA, false), StoreNotInitialized);
    const auto c = require_writer(*s, ctx, "notes", "notes", kA, true);
    CHECK(c.writer.state_id == kA);
    CHECK(c.writer.generation == 1);
    CHECK(read_store_identity(*s, ctx, "notes", "notes").identity.app == "notes");
}

TEST_CASE("store identity JSON: strict, named errors", "[identity]") {
    StoreIdentity id;
    id.store_id = kA;
    id.app = "notes";
    id.created = "2026-12-01T00:00:00.000Z";
    id.created_by = "srv1";
    const auto back = StoreIdentity::from_json(id.to_json());
    CHECK(back.store_id == kA);
    CHECK_FALSE(back.writer);
    id.writer = StoreWriter{kB, "srv2", "notes", 4, "2026-12-01T01:00:00.000Z"};
    CHECK(StoreIdentity::from_json(id.to_json()).writer->generation == 4);
    CHECK_THROWS_WITH(StoreIdentity::from_json(R"({"format": 1})"), Catch::Contains("\"store_id\" is missing"));
    CHECK_THROWS_WITH(StoreIdentity::from_json(R"({"format": 2})"), Catch::Contains("unsupported format 2"));
    auto bad = id;
    bad.writer->generation = 0;
    CHECK_THROWS_WITH(StoreIdentity::from_json(bad.to_json()), Catch::Contains("\"writer.generation\" must be at least 1"));
}
