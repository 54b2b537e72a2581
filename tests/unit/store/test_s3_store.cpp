// The store contract (store_contract.hpp) on the s3:// store, and what is particular to it,
// against a real S3 server: npm's s3rver behind tests/helpers/s3proxy.py, which verifies every
// request's SigV4 signature with botocore and injects the faults a test asks for. The meson
// test runs this program under tests/helpers/s3servers.py, which starts both and passes
// BARTL_TEST_S3_ENDPOINT (the proxy), BARTL_TEST_S3_VHOST_ENDPOINT, BARTL_TEST_S3_BUCKET and
// BARTL_TEST_S3_DATA (s3rver's directory).
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "store/http.hpp"
#include "store/s3_store.hpp"
#include "store/store.hpp"
#include "store_contract.hpp"
#include "store_test_util.hpp"
#include "util/sha256.hpp"

using namespace bartl;
using namespace bartl::test;
using nlohmann::json;

namespace {

std::string env_or_fail(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v)
        throw std::runtime_error(fmt::format("{} is not set: run this test through tests/helpers/s3servers.py run", name));
    return v;
}

std::string endpoint() { return env_or_fail("BARTL_TEST_S3_ENDPOINT"); }
std::string bucket() { return env_or_fail("BARTL_TEST_S3_BUCKET"); }

/// s3rver's own record of the multipart uploads in progress in the test bucket.
std::vector<std::string> uploads_in_progress() {
    return names_in(stdfs::path(env_or_fail("BARTL_TEST_S3_DATA")) / bucket() / "._S3rver_uploads");
}

void use_test_credentials(const char* secret = "S3RVER", const char* key_id = "S3RVER") {
    ::setenv("AWS_ACCESS_KEY_ID", key_id, 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
    ::unsetenv("AWS_SESSION_TOKEN");
}

/// The proxy's control endpoint (tests/helpers/s3proxy.py).
json proxy(const std::string& path, const json& body = nullptr) {
    HttpClient c({});
    HttpRequest req;
    req.url = endpoint() + path;
    const std::string text = body.is_null() ? "" : body.dump();
    if (!body.is_null()) {
        req.method = "POST";
        req.body = text;
        req.headers = {"Content-Type: application/json"};
    }
    auto r = c.perform(Context{}, req, "test proxy " + path);
    if (r.status != 200) throw std::runtime_error(fmt::format("test proxy {}: HTTP {}", path, r.status));
    return json::parse(r.body);
}
void fault(const json& rule) { proxy("/__proxy/faults", json::array({rule})); }
void proxy_reset() { proxy("/__proxy/reset", json::object()); }
json stats() { return proxy("/__proxy/stats"); }
int count(const json& s, const std::string& op) { return s["counts"].value(op, 0); }

StoreSettings fast_settings() {
    StoreSettings st;
    st.call_timeout = std::chrono::seconds(10);
    st.retry_for = std::chrono::seconds(20);
    st.s3.endpoint = endpoint();
    st.s3.path_style = true;
    st.s3.part_size = 5ull << 20;  // S3's smallest part
    st.s3.parts_in_flight = 3;
    return st;
}

std::string unique_prefix() {
    static std::atomic<unsigned> n{0};
    return fmt::format("t{}-{}", ::getpid(), n++);
}

std::unique_ptr<Store> s3_store(const std::string& prefix, StoreSettings st = fast_settings(),
                                const stdfs::path& credentials_dir = {}) {
    StoreOptions o;
    o.settings = std::move(st);
    o.credentials_dir = credentials_dir;
    return open_store(fmt::format("s3://{}/{}", bucket(), prefix), o);
}

/// A loopback port nothing listens on.
int closed_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

struct S3Backend {
    S3Backend() { use_test_credentials(); }
    std::string prefix = unique_prefix();
    std::unique_ptr<Store> store = s3_store(prefix);
    std::unique_ptr<Store> unreachable() {
        auto st = fast_settings();
        st.s3.endpoint = fmt::format("http://127.0.0.1:{}", closed_port());
        st.retry_for = std::chrono::milliseconds(300);
        return s3_store(prefix, st);
    }
};

std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::string s(n, '\0');
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
        const auto v = rng();
        std::memcpy(&s[i], &v, 8);
    }
    return s;
}

std::string sha256_of(const std::string& s) {
    Sha256 h;
    h.update(s.data(), s.size());
    return h.hex();
}

/// Reads `name` whole through a SHA-256, as a restore does.
std::string read_sha256(Store& s, const std::string& name, const Context& ctx = {}) {
    auto r = s.open(ctx, name);
    Sha256 h;
    std::string buf(200000, '\0');
    while (std::size_t n = r->read(buf.data(), buf.size())) h.update(buf.data(), n);
    return h.hex();
}

void write_all(ObjectWriter& w, const std::string& data, std::size_t piece = 1 << 20) {
    for (std::size_t i = 0; i < data.size(); i += piece) w.write(data.data() + i, std::min(piece, data.size() - i));
}

}  // namespace

BARTL_STORE_CONTRACT(S3Backend)

TEST_CASE("s3 store: a listing pages through more than 1,000 objects", "[s3]") {
    S3Backend b;
    // Straight through s3rver's API with a signed client of our own would be no faster: the
    // objects are written by the store itself, 8 writers at once.
    constexpr int kObjects = 1100;
    std::vector<std::thread> writers;
    std::atomic<int> next{0};
    for (int t = 0; t < 8; ++t)
        writers.emplace_back([&] {
            for (int i; (i = next++) < kObjects;) b.store->put(Context{}, fmt::format("notes-{:04}", i), "x");
        });
    for (auto& t : writers) t.join();
    b.store->put(Context{}, "other", "yy");
    proxy_reset();
    const auto listed = b.store->list(Context{}, "notes-");
    REQUIRE(listed.size() == kObjects);
    CHECK(listed.front().name == "notes-0000");
    CHECK(listed.back().name == "notes-1099");
    CHECK(std::is_sorted(listed.begin(), listed.end(),
                         [](const ObjectInfo& x, const ObjectInfo& y) { return x.name < y.name; }));
    CHECK(count(stats(), "ListObjectsV2") == 2);  // 1,000 per page
    CHECK(b.store->list(Context{}, "").size() == kObjects + 1);

    // ... and DeleteObjects removes them 1,000 per request, naming no other object.
    std::vector<std::string> names;
    for (const auto& o : listed) names.push_back(o.name);
    names.push_back("notes-never-written");  // missing is fine
    proxy_reset();
    b.store->remove_many(Context{}, names);
    CHECK(count(stats(), "DeleteObjects") == 2);
    CHECK(count(stats(), "DeleteObject") == 0);
    CHECK(listed_names(*b.store) == std::vector<std::string>{"other"});
}

TEST_CASE("s3 store: a multipart upload streams parts with bounded parts in flight", "[s3]") {
    S3Backend b;
    const std::string blob = random_bytes((30u << 20) + 12345, 1);  // 6 full parts of 5 MiB and a short one
    proxy_reset();
    Context ctx;
    auto w = b.store->create(ctx, "notes-big.tar.zst");
    write_all(*w, blob.substr(0, 12u << 20));
    // Parts are on their way, and nothing is listed while the upload is open.
    CHECK(count(stats(), "CreateMultipartUpload") == 1);
    CHECK(uploads_in_progress().size() == 1);
    CHECK(b.store->list(ctx, "").empty());
    write_all(*w, blob.substr(12u << 20));
    w->commit(ctx);
    const auto s = stats();
    CHECK(count(s, "UploadPart") == 7);
    CHECK(count(s, "CompleteMultipartUpload") == 1);
    CHECK(count(s, "PutObject") == 0);
    // At most parts_in_flight part buffers at once, the one being filled included.
    CHECK(s["max_in_flight"].value("UploadPart", 0) <= 3);
    CHECK(s["max_in_flight"].value("UploadPart", 0) >= 2);
    CHECK(uploads_in_progress().empty());
    for (const auto& r : s["requests"])
        if (r["op"] == "UploadPart") CHECK(r["payload"].get<std::string>().size() == 64);  // the part's SHA-256
    const auto listed = b.store->list(ctx, "");
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].size == blob.size());
    CHECK(read_sha256(*b.store, "notes-big.tar.zst") == sha256_of(blob));
}

TEST_CASE("s3 store: a failed upload is aborted and leaves nothing", "[s3]") {
    use_test_credentials();
    auto st = fast_settings();
    st.retry_for = std::chrono::seconds(1);
    auto store = s3_store(unique_prefix(), st);
    const std::string blob = random_bytes(16u << 20, 2);
    proxy_reset();
    fault({{"op", "UploadPart"}, {"action", "status"}, {"status", 500}, {"count", 1000}});
    Context ctx;
    auto w = store->create(ctx, "notes-x.tar.zst");
    CHECK_THROWS_WITH(
        [&] {
            write_all(*w, blob);
            w->commit(ctx);
        }(),
        Catch::Contains("uploading part") && Catch::Contains("HTTP 500 InternalError") && Catch::Contains("tries in"));
    CHECK(uploads_in_progress().size() == 1);
    w->abort(ctx);
    CHECK(uploads_in_progress().empty());
    CHECK(count(stats(), "AbortMultipartUpload") == 1);
    proxy_reset();
    CHECK(store->list(ctx, "").empty());
}

TEST_CASE("s3 store: an upload whose writer vanished is aborted by cleanup once old enough", "[s3]") {
    S3Backend b;
    const std::string blob = random_bytes(11u << 20, 3);
    {
        auto w = b.store->create(Context{}, "notes-killed.tar.zst");
        write_all(*w, blob);
    }  // destroyed without commit or abort: no network call, the upload stays
    REQUIRE(uploads_in_progress().size() == 1);
    CHECK(b.store->list(Context{}, "").empty());
    CHECK(b.store->remove_abandoned_uploads(Context{}, "notes-", std::chrono::hours(24)) == 0);
    CHECK(b.store->remove_abandoned_uploads(Context{}, "other-", std::chrono::seconds(-5)) == 0);
    CHECK(uploads_in_progress().size() == 1);
    CHECK(b.store->remove_abandoned_uploads(Context{}, "notes-", std::chrono::seconds(-5)) == 1);
    CHECK(uploads_in_progress().empty());
}

TEST_CASE("s3 store: a download resumes after connections reset mid-body, and the SHA-256 holds", "[s3]") {
    S3Backend b;
    const std::string blob = random_bytes(13u << 20, 4);
    {
        auto w = b.store->create(Context{}, "notes-r.tar.zst");
        write_all(*w, blob);
        w->commit(Context{});
    }
    proxy_reset();
    fault({{"op", "GetObject"}, {"key", "notes-r"}, {"action", "reset"}, {"after", 3 << 20}, {"count", 3}});
    CHECK(read_sha256(*b.store, "notes-r.tar.zst") == sha256_of(blob));
    std::vector<std::string> ranges;
    const auto seen = stats();
    for (const auto& r : seen["requests"])
        if (r["op"] == "GetObject") ranges.push_back(r["range"]);
    REQUIRE(ranges.size() == 4);
    CHECK(ranges[0].empty());
    // Each resume starts where the bytes that arrived end (a reset discards what was still in
    // flight, so not necessarily where the proxy cut).
    std::uint64_t last = 0;
    for (std::size_t i = 1; i < ranges.size(); ++i) {
        REQUIRE(ranges[i].rfind("bytes=", 0) == 0);
        const auto from = std::stoull(ranges[i].substr(6));
        CHECK(from > last);
        CHECK(from <= last + (3u << 20));
        last = from;
    }
    // The resumes ask for the object first read (If-Match on its ETag).
    for (const auto& r : seen["requests"])
        if (r["op"] == "GetObject" && !r["range"].get<std::string>().empty()) CHECK(r["if_match"] != "");

    // From an offset, resumed as well.
    proxy_reset();
    fault({{"op", "GetObject"}, {"action", "reset"}, {"after", 1 << 20}, {"count", 1}});
    auto r = b.store->open(Context{}, "notes-r.tar.zst", 5u << 20);
    std::string rest;
    std::string buf(65536, '\0');
    while (std::size_t n = r->read(buf.data(), buf.size())) rest.append(buf.data(), n);
    CHECK(rest == blob.substr(5u << 20));
}

TEST_CASE("s3 store: a download that never gets a byte fails once the retry budget is spent", "[s3]") {
    use_test_credentials();
    auto st = fast_settings();
    st.retry_for = std::chrono::milliseconds(800);
    const auto prefix = unique_prefix();
    auto store = s3_store(prefix, st);
    put_object(*store, "notes-n", std::string(100000, 'n'));
    proxy_reset();
    fault({{"op", "GetObject"}, {"action", "reset"}, {"after", 0}, {"count", 1000}});
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(read_object(*store, "notes-n"), StoreUnavailable);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    CHECK(count(stats(), "GetObject") >= 2);
}

TEST_CASE("s3 store: bursts of 5xx and 429 are retried, a lasting one is unavailable", "[s3]") {
    S3Backend b;
    proxy_reset();
    fault({{"op", "ListObjectsV2"}, {"action", "status"}, {"status", 503}, {"count", 3}});
    fault({{"op", "PutObject"}, {"action", "status"}, {"status", 429}, {"count", 2}});
    fault({{"op", "GetObject"}, {"action", "status"}, {"status", 500}, {"count", 2}});
    put_object(*b.store, "notes-1", "one");
    CHECK(listed_names(*b.store) == std::vector<std::string>{"notes-1"});
    CHECK(read_object(*b.store, "notes-1") == "one");
    auto s = stats();
    CHECK(count(s, "ListObjectsV2") == 4);
    CHECK(count(s, "PutObject") == 3);
    CHECK(count(s, "GetObject") == 3);

    auto st = fast_settings();
    st.retry_for = std::chrono::milliseconds(700);
    auto impatient = s3_store(b.prefix, st);
    fault({{"op", "ListObjectsV2"}, {"action", "status"}, {"status", 503}, {"count", 1000}});
    CHECK_THROWS_WITH(impatient->list(Context{}, ""),
                      Catch::Contains("store s3://" + bucket() + "/" + b.prefix + ": listing: HTTP 503 SlowDown") &&
                          Catch::Contains("tries in"));
    proxy_reset();
}

TEST_CASE("s3 store: each request is bounded by call_timeout", "[s3]") {
    use_test_credentials();
    auto st = fast_settings();
    st.call_timeout = std::chrono::milliseconds(500);
    st.retry_for = std::chrono::milliseconds(0);
    auto store = s3_store(unique_prefix(), st);
    proxy_reset();
    fault({{"op", "ListObjectsV2"}, {"action", "slow"}, {"delay", 3}, {"count", 1}});
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(store->list(Context{}, ""), StoreUnavailable);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(2500));
    // And by the caller's deadline.
    fault({{"op", "ListObjectsV2"}, {"action", "slow"}, {"delay", 3}, {"count", 1}});
    auto st2 = fast_settings();
    auto patient = s3_store(unique_prefix(), st2);
    const auto t1 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(patient->list(Context{}.with_timeout(std::chrono::milliseconds(600)), ""), StoreUnavailable);
    CHECK(std::chrono::steady_clock::now() - t1 < std::chrono::milliseconds(2500));
    std::this_thread::sleep_for(std::chrono::seconds(3));  // let the proxy's slow answers drain
    proxy_reset();
}

TEST_CASE("s3 store: a stop request ends a download between chunks", "[s3]") {
    S3Backend b;
    put_object(*b.store, "notes-slow", random_bytes(4u << 20, 5));
    proxy_reset();
    fault({{"op", "GetObject"}, {"action", "trickle"}, {"chunk", 65536}, {"delay", 0.2}, {"count", 1}});
    Context ctx = Context{}.child();
    auto r = b.store->open(ctx, "notes-slow");
    std::thread stopper([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        ctx.cancel.cancel("test stop");
    });
    const auto t0 = std::chrono::steady_clock::now();
    std::string buf(65536, '\0');
    CHECK_THROWS_AS(
        [&] {
            while (r->read(buf.data(), buf.size())) {
            }
        }(),
        StopRequested);
    stopper.join();
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
    r.reset();
    proxy_reset();
}

TEST_CASE("s3 store: the proxy rejects a wrong secret, and the error says the credentials are wrong", "[s3]") {
    use_test_credentials("not-the-secret");
    const auto prefix = unique_prefix();
    auto store = s3_store(prefix);
    proxy_reset();
    CHECK_THROWS_WITH(store->list(Context{}, ""),
                      Catch::Contains("SignatureDoesNotMatch") && Catch::Contains("credentials are wrong") &&
                          !Catch::Contains("not-the-secret"));
    CHECK_THROWS_AS(store->get(Context{}, "bartl-store.json"), StoreUnavailable);
    CHECK_THROWS_AS(store->create(Context{}, "x"), StoreUnavailable);
    CHECK(stats()["rejected"].size() == 3);
    use_test_credentials("S3RVER", "NOBODY");
    auto unknown = s3_store(prefix);
    CHECK_THROWS_WITH(unknown->list(Context{}, ""), Catch::Contains("InvalidAccessKeyId"));
    use_test_credentials();
}

TEST_CASE("s3 store: a wrong bucket is a clear error, never an empty store", "[s3]") {
    use_test_credentials();
    StoreOptions o;
    o.settings = fast_settings();
    auto store = open_store("s3://no-such-bucket/notes", o);
    CHECK_THROWS_WITH(store->list(Context{}, ""), Catch::Contains("NoSuchBucket") &&
                                                      Catch::Contains("bucket no-such-bucket does not exist"));
    CHECK_THROWS_AS(store->get(Context{}, "bartl-store.json"), StoreUnavailable);
    CHECK_THROWS_AS(store->open(Context{}, "x"), StoreUnavailable);
    CHECK_THROWS_AS(store->create(Context{}, "x"), StoreUnavailable);
}

TEST_CASE("s3 store: 403 on writes is read-only, 412 is a failed precondition", "[s3]") {
    S3Backend b;
    put_object(*b.store, "notes-1", "one");
    proxy_reset();
    fault({{"op", "PutObject"}, {"action", "status"}, {"status", 403}, {"code", "AccessDenied"}, {"count", 2}});
    CHECK_THROWS_AS(b.store->put(Context{}, "notes-2", "two"), StoreReadOnly);
    CHECK_THROWS_WITH(b.store->put(Context{}, "notes-2", "two"), Catch::Contains("may read but not write"));
    CHECK(read_object(*b.store, "notes-1") == "one");  // reads still work
    const auto e = b.store->get(Context{}, "notes-1")->etag;
    fault({{"op", "PutObject"}, {"action", "status"}, {"status", 412}, {"count", 1}});
    CHECK_THROWS_AS(b.store->put(Context{}, "notes-1", "uno", WriteCondition::match(e)), PreconditionFailed);
    CHECK(read_object(*b.store, "notes-1") == "one");
    proxy_reset();
}

TEST_CASE("s3 store: conditional writes send If-None-Match / If-Match, and hold where the server ignores them",
          "[s3]") {
    S3Backend b;
    Context ctx;
    proxy_reset();
    const auto e1 = b.store->put(ctx, "bartl-store.json", "one", WriteCondition::absent());
    b.store->put(ctx, "bartl-store.json", "two", WriteCondition::match(e1));
    std::vector<std::pair<std::string, std::string>> sent;
    const auto seen = stats();
    for (const auto& r : seen["requests"])
        if (r["op"] == "PutObject") sent.emplace_back(r["if_none_match"], r["if_match"]);
    REQUIRE(sent.size() == 2);
    CHECK(sent[0] == std::pair<std::string, std::string>{"*", ""});
    CHECK(sent[1] == std::pair<std::string, std::string>{"", e1});

    // Does this server enforce them itself? Ask it directly, with a stale If-Match.
    HttpClientSettings hs;
    hs.aws_sigv4 = "aws:amz:us-east-1:s3";
    hs.user = hs.password = "S3RVER";
    HttpClient c(hs);
    HttpRequest req;
    req.method = "PUT";
    req.url = fmt::format("{}/{}/{}/bartl-store.json", endpoint(), bucket(), b.prefix);
    req.body = "raced";
    req.headers = {"If-Match: " + e1, "Content-Type: application/octet-stream",
                   "x-amz-content-sha256: " + sha256_of("raced")};
    const auto r = c.perform(ctx, req, "probe");
    const bool enforced = r.status == 412;
    if (!enforced)
        WARN("this S3 server ignores If-Match (HTTP " << r.status << "): bartl's HEAD before and read back after "
                                                                    "each conditional write stand in");
    CHECK_THAT(b.store->conditional_write_guarantee(), Catch::Contains("window"));
    // Either way bartl refuses the stale write.
    CHECK_THROWS_AS(b.store->put(ctx, "bartl-store.json", "stale", WriteCondition::match(e1)), PreconditionFailed);
}

TEST_CASE("s3 store: virtual-hosted addressing, storage class and session tokens", "[s3]") {
    use_test_credentials();
    ::setenv("AWS_SESSION_TOKEN", "test-session-token", 1);
    auto st = fast_settings();
    st.s3.endpoint = env_or_fail("BARTL_TEST_S3_VHOST_ENDPOINT");
    st.s3.path_style = false;
    st.s3.storage_class = "STANDARD_IA";
    auto store = s3_store(unique_prefix(), st);
    proxy_reset();
    put_object(*store, "notes-v", "virtual");
    CHECK(read_object(*store, "notes-v") == "virtual");
    CHECK(listed_names(*store) == std::vector<std::string>{"notes-v"});
    const auto s = stats();
    CHECK(s["rejected"].empty());
    for (const auto& r : s["requests"]) {
        CHECK(r["host"] == bucket() + ".s3.localhost");
        CHECK(r["token"] == "test-session-token");
        if (r["op"] == "PutObject") CHECK(r["storage_class"] == "STANDARD_IA");
    }
    ::unsetenv("AWS_SESSION_TOKEN");
}

TEST_CASE("s3 store: credentials come from the systemd credential aws-credentials", "[s3]") {
    ::unsetenv("AWS_ACCESS_KEY_ID");
    ::unsetenv("AWS_SECRET_ACCESS_KEY");
    ::unsetenv("AWS_SESSION_TOKEN");
    TempDir creds;
    const auto prefix = unique_prefix();
    CHECK_THROWS_WITH(s3_store(prefix)->list(Context{}, ""),
                      Catch::Contains("no S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set") &&
                          Catch::Contains("$CREDENTIALS_DIRECTORY is not set"));
    CHECK_THROWS_WITH(s3_store(prefix, fast_settings(), creds.path())->list(Context{}, ""),
                      Catch::Contains("there is no systemd credential " + (creds / "aws-credentials").string()));
    write_file(creds / "aws-credentials",
               "[default]\naws_access_key_id = S3RVER\naws_secret_access_key = wrong\n\n"
               "[backups]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n");
    auto st = fast_settings();
    CHECK_THROWS_WITH(s3_store(prefix, st, creds.path())->list(Context{}, ""), Catch::Contains("SignatureDoesNotMatch"));
    st.s3.profile = "backups";
    CHECK(s3_store(prefix, st, creds.path())->list(Context{}, "").empty());
    st.s3.profile = "absent";
    CHECK_THROWS_WITH(s3_store(prefix, st, creds.path())->list(Context{}, ""),
                      Catch::Contains("has no profile [absent] ([store.s3] profile)"));
    use_test_credentials();
}

TEST_CASE("s3 store: AWS_PROFILE names the profile unless [store.s3] profile does", "[s3]") {
    ::unsetenv("AWS_SESSION_TOKEN");
    ::unsetenv("AWS_DEFAULT_PROFILE");
    TempDir creds;
    const auto prefix = unique_prefix();
    // Two profiles, only "backups" holds the secret the proxy accepts.
    write_file(creds / "aws-credentials",
               "[default]\naws_access_key_id = S3RVER\naws_secret_access_key = wrong\n\n"
               "[profile backups]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n");
    auto st = fast_settings();
    st.s3.profile.clear();
    ::unsetenv("AWS_ACCESS_KEY_ID");
    ::unsetenv("AWS_SECRET_ACCESS_KEY");
    ::unsetenv("AWS_PROFILE");
    CHECK_THROWS_WITH(s3_store(prefix, st, creds.path())->list(Context{}, ""), Catch::Contains("SignatureDoesNotMatch"));
    ::setenv("AWS_PROFILE", "backups", 1);
    CHECK(s3_store(prefix, st, creds.path())->list(Context{}, "").empty());
    // The configured profile wins over the environment's, "default" too.
    st.s3.profile = "default";
    CHECK_THROWS_WITH(s3_store(prefix, st, creds.path())->list(Context{}, ""), Catch::Contains("SignatureDoesNotMatch"));
    st.s3.profile.clear();
    ::setenv("AWS_PROFILE", "absent", 1);
    CHECK_THROWS_WITH(s3_store(prefix, st, creds.path())->list(Context{}, ""),
                      Catch::Contains("has no profile [absent] (AWS_PROFILE)"));
    // Keys in the environment win over any profile, as for botocore without --profile.
    use_test_credentials();
    CHECK(s3_store(prefix, st, creds.path())->list(Context{}, "").empty());
    use_test_credentials("wrong");
    ::setenv("AWS_PROFILE", "backups", 1);
    CHECK_THROWS_WITH(s3_store(prefix, st, creds.path())->list(Context{}, ""), Catch::Contains("SignatureDoesNotMatch"));
    ::unsetenv("AWS_PROFILE");
    use_test_credentials();
}

TEST_CASE("s3 store URLs are parsed when the store is opened, without contacting it", "[s3]") {
    StoreOptions o;
    o.settings.s3.endpoint = fmt::format("http://127.0.0.1:{}", closed_port());
    auto s = open_store("s3://bucket/some/prefix", o);
    auto* s3 = dynamic_cast<S3Store*>(s.get());
    REQUIRE(s3 != nullptr);
    CHECK(s3->location().bucket == "bucket");
    CHECK(s3->location().prefix == "some/prefix");
    CHECK(s->url() == "s3://bucket/some/prefix");
    CHECK_THROWS_AS(open_store("s3://Bad_Bucket/x"), ConfigError);
    CHECK_THROWS_AS(open_store("s3://key:secret@bucket/x"), ConfigError);
}
