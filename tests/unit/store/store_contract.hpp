// The store contract (store/store.hpp) as test cases over a backend factory: every backend
// (file here; s3 and sftp where their servers run) passes the same cases. A backend type
// provides `store` (a reachable, empty store), `unreachable()` (one whose location does not
// answer) and a name for messages.
#pragma once

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "store/store.hpp"
#include "util/cancel.hpp"

namespace bartl::test {

inline void put_object(Store& store, const std::string& name, const std::string& content) {
    Context ctx;
    auto w = store.create(ctx, name);
    w->write(content.data(), content.size());
    w->commit(ctx);
}

inline std::string read_object(Store& store, const std::string& name, std::uint64_t offset = 0) {
    auto r = store.open(Context{}, name, offset);
    std::string out;
    char buf[1000];  // smaller than the objects: several reads per object
    while (std::size_t n = r->read(buf, sizeof buf)) out.append(buf, n);
    return out;
}

inline std::vector<std::string> listed_names(Store& store, const std::string& prefix = "") {
    std::vector<std::string> out;
    for (const auto& o : store.list(Context{}, prefix)) out.push_back(o.name);
    return out;
}

}  // namespace bartl::test

#define BARTL_STORE_CONTRACT(Backend)                                                                              \
    TEMPLATE_TEST_CASE("store contract: an empty store answers with nothing", "[store][contract]", Backend) {      \
        TestType b;                                                                                                \
        CHECK(b.store->list(::bartl::Context{}, "").empty());                                                     \
        CHECK(b.store->list(::bartl::Context{}, "notes-").empty());                                               \
        CHECK_FALSE(b.store->get(::bartl::Context{}, "bartl-store.json").has_value());                            \
    }                                                                                                              \
    TEMPLATE_TEST_CASE("store contract: an unreachable store is unavailable, never empty", "[store][contract]",   \
                       Backend) {                                                                                  \
        TestType b;                                                                                                \
        auto s = b.unreachable();                                                                                  \
        ::bartl::Context ctx;                                                                                      \
        CHECK_THROWS_AS(s->list(ctx, ""), ::bartl::StoreUnavailable);                                              \
        CHECK_THROWS_AS(s->create(ctx, "x"), ::bartl::StoreUnavailable);                                           \
        CHECK_THROWS_AS(s->open(ctx, "x"), ::bartl::StoreUnavailable);                                             \
        CHECK_THROWS_AS(s->get(ctx, "x"), ::bartl::StoreUnavailable);                                              \
        CHECK_THROWS_AS(s->put(ctx, "x", "y"), ::bartl::StoreUnavailable);                                         \
        CHECK_THROWS_AS(s->remove(ctx, "x"), ::bartl::StoreUnavailable);                                           \
        CHECK_THROWS_AS(s->put(ctx, "x", "y", ::bartl::WriteCondition::absent()), ::bartl::StoreUnavailable);      \
    }                                                                                                              \
    TEMPLATE_TEST_CASE("store contract: objects become visible only when committed", "[store][contract]",         \
                       Backend) {                                                                                  \
        TestType b;                                                                                                \
        auto& s = *b.store;                                                                                        \
        ::bartl::Context ctx;                                                                                      \
        {                                                                                                          \
            auto w = s.create(ctx, "notes-1.tar.zst");                                                             \
            w->write("partial", 7);                                                                                \
            CHECK(s.list(ctx, "").empty());                                                                        \
            CHECK_THROWS_AS(s.open(ctx, "notes-1.tar.zst"), ::bartl::NotFound);                                    \
            w->abort(ctx);                                                                                         \
            w->abort(ctx); /* idempotent */                                                                        \
        }                                                                                                          \
        CHECK(s.list(ctx, "").empty());                                                                            \
        {                                                                                                          \
            auto w = s.create(ctx, "notes-1.tar.zst");                                                             \
            w->write("dropped", 7);                                                                                \
        } /* destroyed without commit or abort: never visible */                                                   \
        CHECK(s.list(ctx, "").empty());                                                                            \
        auto w = s.create(ctx, "notes-1.tar.zst");                                                                 \
        const std::string big(3 * 1024 * 1024 + 17, 'z');                                                         \
        w->write(big.data(), big.size());                                                                          \
        w->commit(ctx);                                                                                            \
        CHECK_THROWS_AS(w->commit(ctx), ::bartl::RuntimeError);                                                    \
        CHECK_NOTHROW(w->abort(ctx)); /* a no-op after commit */                                                   \
        w.reset();                                                                                                 \
        const auto listed = s.list(ctx, "");                                                                       \
        REQUIRE(listed.size() == 1);                                                                               \
        CHECK(listed[0].name == "notes-1.tar.zst");                                                                \
        CHECK(listed[0].size == big.size());                                                                       \
        const auto age = std::chrono::system_clock::now() - listed[0].modified;                                    \
        CHECK(age < std::chrono::minutes(5));                                                                      \
        CHECK(age > -std::chrono::minutes(5));                                                                     \
        CHECK(::bartl::test::read_object(s, "notes-1.tar.zst") == big);                                            \
        /* Resumable reads: from an offset to the end. */                                                          \
        CHECK(::bartl::test::read_object(s, "notes-1.tar.zst", big.size() - 5) == big.substr(big.size() - 5));     \
        CHECK(::bartl::test::read_object(s, "notes-1.tar.zst", big.size()).empty());                               \
    }                                                                                                              \
    TEMPLATE_TEST_CASE("store contract: list filters by prefix and sorts by name", "[store][contract]", Backend) { \
        TestType b;                                                                                                \
        auto& s = *b.store;                                                                                        \
        ::bartl::test::put_object(s, "notes-b", "2");                                                              \
        ::bartl::test::put_object(s, "notes-a", "1");                                                              \
        ::bartl::test::put_object(s, "other-a", "333");                                                            \
        CHECK(::bartl::test::listed_names(s, "notes-") == std::vector<std::string>{"notes-a", "notes-b"});         \
        CHECK(::bartl::test::listed_names(s) == std::vector<std::string>{"notes-a", "notes-b", "other-a"});        \
        CHECK(s.list(::bartl::Context{}, "other-").at(0).size == 3);                                               \
    }                                                                                                              \
    TEMPLATE_TEST_CASE("store contract: missing objects, idempotent remove, flat names", "[store][contract]",     \
                       Backend) {                                                                                  \
        TestType b;                                                                                                \
        auto& s = *b.store;                                                                                        \
        ::bartl::Context ctx;                                                                                      \
        CHECK_THROWS_AS(s.open(ctx, "nope"), ::bartl::NotFound);                                                   \
        CHECK_THROWS_WITH(s.open(ctx, "nope"), Catch::Contains("nope"));                                           \
        CHECK_THROWS_AS(s.open(ctx, "../etc/passwd"), ::bartl::NotFound);                                          \
        CHECK_FALSE(s.get(ctx, "nope").has_value());                                                               \
        CHECK_NOTHROW(s.remove(ctx, "nope"));                                                                      \
        ::bartl::test::put_object(s, "obj", "data");                                                               \
        s.remove(ctx, "obj");                                                                                      \
        CHECK(s.list(ctx, "").empty());                                                                            \
        CHECK_NOTHROW(s.remove(ctx, "obj"));                                                                       \
        CHECK_THROWS_AS(s.create(ctx, "a/b"), ::bartl::RuntimeError);                                              \
        CHECK_THROWS_AS(s.create(ctx, ".hidden"), ::bartl::RuntimeError);                                          \
        CHECK_THROWS_AS(s.create(ctx, ""), ::bartl::RuntimeError);                                                 \
        CHECK(s.list(ctx, "").empty());                                                                            \
    }                                                                                                              \
    TEMPLATE_TEST_CASE("store contract: small objects and conditional writes", "[store][contract]", Backend) {     \
        TestType b;                                                                                                \
        auto& s = *b.store;                                                                                        \
        ::bartl::Context ctx;                                                                                      \
        const auto e1 = s.put(ctx, "bartl-store.json", "one", ::bartl::WriteCondition::absent());                  \
        /* Two hosts creating the identity at once: the second one loses. */                                       \
        CHECK_THROWS_AS(s.put(ctx, "bartl-store.json", "two", ::bartl::WriteCondition::absent()),                  \
                        ::bartl::PreconditionFailed);                                                              \
        auto got = s.get(ctx, "bartl-store.json");                                                                 \
        REQUIRE(got);                                                                                              \
        CHECK(got->data == "one");                                                                                 \
        CHECK(got->etag == e1);                                                                                    \
        const auto e2 = s.put(ctx, "bartl-store.json", "two", ::bartl::WriteCondition::match(e1));                 \
        CHECK(e2 != e1);                                                                                           \
        /* A writer that read "one" and writes late is refused: it must read again. */                             \
        CHECK_THROWS_AS(s.put(ctx, "bartl-store.json", "stale", ::bartl::WriteCondition::match(e1)),               \
                        ::bartl::PreconditionFailed);                                                              \
        CHECK(s.get(ctx, "bartl-store.json")->data == "two");                                                      \
        CHECK_THROWS_AS(s.put(ctx, "missing.json", "x", ::bartl::WriteCondition::match(e2)),                       \
                        ::bartl::PreconditionFailed);                                                              \
        s.put(ctx, "bartl-store.json", "three");                                                                   \
        CHECK(s.get(ctx, "bartl-store.json")->data == "three");                                                    \
        CHECK_THROWS_AS(s.get(ctx, "bartl-store.json", 2), ::bartl::RuntimeError);                                 \
    }                                                                                                              \
    TEMPLATE_TEST_CASE("store contract: a cancelled context stops a call", "[store][contract]", Backend) {         \
        TestType b;                                                                                                \
        ::bartl::Context ctx = ::bartl::Context{}.child();                                                         \
        ctx.cancel.cancel("test stop");                                                                            \
        CHECK_THROWS_AS(b.store->list(ctx, ""), ::bartl::StopRequested);                                           \
        CHECK_THROWS_WITH(b.store->create(ctx, "x"), Catch::Contains("test stop"));                                \
        CHECK(::bartl::test::listed_names(*b.store).empty());                                                      \
    }
