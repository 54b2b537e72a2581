// The stores' one retry loop (store/retry.hpp).
#include <catch2/catch.hpp>

#include <chrono>

#include "core/error.hpp"
#include "store/retry.hpp"

using namespace bartl;
using namespace std::chrono;

TEST_CASE("retry: backoff grows exponentially to its cap", "[retry]") {
    RetryPolicy p{milliseconds(100), milliseconds(1000), seconds(10)};
    CHECK(backoff_cap(p, 1) == milliseconds(100));
    CHECK(backoff_cap(p, 2) == milliseconds(200));
    CHECK(backoff_cap(p, 4) == milliseconds(800));
    CHECK(backoff_cap(p, 5) == milliseconds(1000));
    CHECK(backoff_cap(p, 64) == milliseconds(1000));
}

TEST_CASE("retry: transient failures are retried until success", "[retry]") {
    int calls = 0;
    std::vector<unsigned> heard;
    with_retries(Context{}, RetryPolicy{milliseconds(1), milliseconds(5), seconds(10)}, "GET x",
                 [&] {
                     if (++calls < 4) throw TransientStoreError("HTTP 503 SlowDown");
                 },
                 [&](unsigned n, const std::string& e) {
                     heard.push_back(n);
                     CHECK(e == "HTTP 503 SlowDown");
                 });
    CHECK(calls == 4);
    CHECK(heard == std::vector<unsigned>{1, 2, 3});
}

TEST_CASE("retry: other errors pass at once; a spent budget says how long it tried", "[retry]") {
    int calls = 0;
    CHECK_THROWS_AS(with_retries(Context{}, RetryPolicy{}, "GET x",
                                 [&] {
                                     ++calls;
                                     throw NotFound("no such key");
                                 }),
                    NotFound);
    CHECK(calls == 1);
    calls = 0;
    const auto t0 = steady_clock::now();
    try {
        with_retries(Context{}, RetryPolicy{milliseconds(10), milliseconds(20), milliseconds(150)}, "PUT y", [&] {
            ++calls;
            throw TransientStoreError("connection reset");
        });
        FAIL("no error");
    } catch (const StoreUnavailable& e) {
        CHECK(dynamic_cast<const TransientStoreError*>(&e) == nullptr);  // a plain StoreUnavailable
        CHECK_THAT(e.what(), Catch::StartsWith("PUT y: connection reset (after ") && Catch::Contains(" tries in "));
    }
    CHECK(calls > 2);
    CHECK(steady_clock::now() - t0 < seconds(2));
}

TEST_CASE("retry: an error that already names the call is not prefixed with it again", "[retry]") {
    // The SFTP store's errors start with what the call was ("store URL: reading X: ..."), and
    // the spent budget said it twice: "store URL: reading X: store URL: reading X: ...".
    const std::string what = "store sftp://h/d: reading bartl-store.json";
    try {
        with_retries(Context{}, RetryPolicy{milliseconds(1), milliseconds(2), milliseconds(20)}, what,
                     [&] { throw TransientStoreError(what + ": Couldn't connect to server"); });
        FAIL("no error");
    } catch (const StoreUnavailable& e) {
        CHECK_THAT(e.what(), Catch::StartsWith(what + ": Couldn't connect to server (after "));
    }
}

TEST_CASE("retry: a stop request ends the wait", "[retry]") {
    Context ctx = Context{}.child();
    int calls = 0;
    const auto t0 = steady_clock::now();
    CHECK_THROWS_AS(with_retries(ctx, RetryPolicy{seconds(5), seconds(5), seconds(60)}, "GET z", [&] {
                        if (++calls == 1) {
                            ctx.cancel.cancel("SIGTERM received");
                            throw TransientStoreError("timeout");
                        }
                    }),
                    StopRequested);
    CHECK(calls == 1);
    CHECK(steady_clock::now() - t0 < seconds(2));
}
