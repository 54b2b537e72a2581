// s3:// store (s3_store.hpp). Request shapes follow the Amazon S3 API Reference
// (PutObject, GetObject, HeadObject, DeleteObject, ListObjectsV2, CreateMultipartUpload,
// UploadPart, CompleteMultipartUpload, AbortMultipartUpload, ListMultipartUploads).
#include "store/s3_store.hpp"

#include <algorithm>
#include <cinttypes>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "core/aws_credentials.hpp"
#include "core/time.hpp"
#include "store/http.hpp"
#include "store/retry.hpp"
#include "util/log.hpp"
#include "util/sha256.hpp"

namespace bartl {
namespace {

constexpr const char* kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr unsigned kMaxParts = 10000;  // S3's limit per multipart upload
constexpr std::size_t kReadAhead = 4u << 20;  // bytes a download may be ahead of its reader
constexpr std::size_t kChunk = 256u << 10;    // bytes per queued piece of a download

bool valid_name(const std::string& name) {
    return !name.empty() && name.size() <= 255 && name.front() != '.' && name.find('/') == std::string::npos &&
           name.find('\0') == std::string::npos;
}

/// Base64 of the MD5 of `data`: the Content-MD5 header (RFC 1864) S3 demands on DeleteObjects.
std::string base64_md5(const std::string& data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr) != 1)
        throw RuntimeError("MD5 failed (OpenSSL EVP)");
    std::string out(4 * ((len + 2) / 3) + 1, '\0');
    out.resize(static_cast<std::size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), md,
                                                        static_cast<int>(len))));
    return out;
}

/// Thrown into libcurl's write callback when a reader is closed mid-download.
struct ReaderClosed {};

}  // namespace

/// What readers and writers share with their store.
struct S3Core {
    enum class Access { read, write };

    std::string url;
    S3Location loc;
    StoreSettings settings;
    std::filesystem::path credentials_dir;
    RetryPolicy policy;
    std::string scheme;     // "http" or "https"
    std::string authority;  // host[:port] of the endpoint
    std::string base_path;  // the endpoint's path, "" or "/something"

    std::mutex mutex;
    std::optional<AwsCredentials> creds;
    std::vector<std::unique_ptr<HttpClient>> idle;  // clients (and their connections) to reuse

    S3Core(std::string u, const StoreOptions& options)
        : url(std::move(u)), loc(parse_s3_url(url)), settings(options.settings),
          credentials_dir(options.credentials_dir) {
        policy.budget = settings.retry_for;
        std::string ep = settings.s3.endpoint.empty()
                             ? fmt::format("https://s3.{}.amazonaws.com", settings.s3.region)
                             : settings.s3.endpoint;
        const auto sep = ep.find("://");
        if (sep == std::string::npos)
            throw ConfigError(fmt::format("[store.s3] endpoint \"{}\" must be an http:// or https:// URL", ep));
        scheme = ep.substr(0, sep);
        if (scheme != "http" && scheme != "https")
            throw ConfigError(fmt::format("[store.s3] endpoint \"{}\" must be an http:// or https:// URL", ep));
        std::string rest = ep.substr(sep + 3);
        const auto slash = rest.find('/');
        authority = rest.substr(0, slash);
        base_path = slash == std::string::npos ? "" : rest.substr(slash);
        while (!base_path.empty() && base_path.back() == '/') base_path.pop_back();
        if (authority.empty() || authority.find('@') != std::string::npos)
            throw ConfigError(fmt::format("[store.s3] endpoint \"{}\" must name a host and hold no credentials", ep));
    }

    // --- credentials and connections ------------------------------------------------------

    /// The credentials, read at the first request. Throws StoreUnavailable naming where bartl
    /// looked, ConfigError for a malformed credentials file.
    AwsCredentials credentials() {
        std::lock_guard lock(mutex);
        if (creds) return *creds;
        if (auto env = aws_credentials_from_env(std::getenv("AWS_ACCESS_KEY_ID"), std::getenv("AWS_SECRET_ACCESS_KEY"),
                                                std::getenv("AWS_SESSION_TOKEN"))) {
            creds = std::move(env);
            return *creds;
        }
        const std::string env_part = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set";
        if (credentials_dir.empty())
            throw StoreUnavailable(fmt::format(
                "store {}: no S3 credentials: {}, and there are no systemd credentials ($CREDENTIALS_DIRECTORY is "
                "not set); pass an AWS credentials file as the credential aws-credentials (LoadCredential= in a "
                "drop-in, see bartld(8) CREDENTIALS)",
                url, env_part));
        const auto file = credentials_dir / "aws-credentials";
        std::ifstream in(file, std::ios::binary);
        if (!in)
            throw StoreUnavailable(fmt::format("store {}: no S3 credentials: {}, and there is no systemd credential "
                                               "{} (LoadCredential=aws-credentials:FILE, see bartld(8) CREDENTIALS)",
                                               url, env_part, file.string()));
        std::stringstream text;
        text << in.rdbuf();
        const auto profile =
            choose_aws_profile(settings.s3.profile, std::getenv("AWS_DEFAULT_PROFILE"), std::getenv("AWS_PROFILE"));
        auto parsed = parse_aws_credentials(text.str(), profile.name, file.string());
        if (!parsed)
            throw StoreUnavailable(fmt::format("store {}: the credentials file {} has no profile [{}] ({})", url,
                                               file.string(), profile.name, profile.source));
        creds = std::move(parsed);
        return *creds;
    }

    /// A client for one request (or one worker's lifetime); give it back with release().
    std::unique_ptr<HttpClient> acquire() {
        const AwsCredentials c = credentials();
        std::lock_guard lock(mutex);
        if (!idle.empty()) {
            auto cl = std::move(idle.back());
            idle.pop_back();
            return cl;
        }
        HttpClientSettings s;
        s.aws_sigv4 = fmt::format("aws:amz:{}:s3", settings.s3.region);
        s.user = c.access_key_id;
        s.password = c.secret_access_key;
        s.ca_file = settings.s3.ca_file;
        return std::make_unique<HttpClient>(std::move(s));
    }

    void release(std::unique_ptr<HttpClient> cl) {
        std::lock_guard lock(mutex);
        if (idle.size() < 16) idle.push_back(std::move(cl));
    }

    // --- URLs -----------------------------------------------------------------------------

    std::string key(const std::string& name) const { return s3_key(loc, name); }

    /// The URL of `key` ("" = the bucket itself) with a canonical `query`.
    std::string url_for(const std::string& object_key, const std::string& query = "") const {
        std::string u = settings.s3.path_style
                            ? fmt::format("{}://{}{}/{}", scheme, authority, base_path, loc.bucket)
                            : fmt::format("{}://{}.{}{}", scheme, loc.bucket, authority, base_path);
        u += "/" + s3_uri_encode(object_key, true);
        if (!query.empty()) u += "?" + query;
        return u;
    }

    // --- requests -------------------------------------------------------------------------

    /// The x-amz-content-sha256 of a body: its SHA-256, or UNSIGNED-PAYLOAD for a large one
    /// over TLS (which protects it on the way; the caller's SHA-256 checks it end to end).
    std::string payload_hash(std::string_view body) const {
        if (body.empty()) return kEmptySha256;
        if (scheme == "https" && body.size() > (64u << 10)) return "UNSIGNED-PAYLOAD";
        Sha256 h;
        h.update(body.data(), body.size());
        return h.hex();
    }

    void add_common_headers(HttpRequest& req, const std::string& payload) {
        req.headers.push_back("x-amz-content-sha256: " + payload);
        const AwsCredentials c = credentials();
        if (!c.session_token.empty()) req.headers.push_back("x-amz-security-token: " + c.session_token);
        req.timeout = settings.call_timeout;
    }

    /// One HTTP exchange with the one retry loop around it: transient statuses (429, 5xx) and
    /// network failures are retried; any other answer is returned for the caller to judge.
    HttpResponse call(const Context& ctx, const std::string& what, HttpRequest req) {
        add_common_headers(req, payload_hash(req.body));
        HttpResponse out;
        with_retries(
            ctx, policy, what,
            [&] {
                auto cl = acquire();
                HttpResponse r = cl->perform(ctx, req, what);
                release(std::move(cl));
                // CompleteMultipartUpload may answer 200 and fail in the body.
                if (r.status == 200 && req.method == "POST") {
                    const auto e = parse_s3_error(r.body);
                    if (e.code == "InternalError" || e.code == "SlowDown" || e.code == "ServiceUnavailable")
                        throw TransientStoreError(fmt::format("{}: {}", e.code, e.message));
                }
                if (s3_status_transient(r.status)) throw TransientStoreError(describe_status(r));
                out = std::move(r);
            },
            [&](unsigned n, const std::string& error) {
                log::debug(fmt::format("{} (try {} failed: {}; retrying)", what, n, error));
            });
        return out;
    }

    /// "HTTP 503 SlowDown: Please reduce your request rate."
    static std::string describe_status(const HttpResponse& r) {
        const auto e = parse_s3_error(r.body);
        if (e.code.empty()) return fmt::format("HTTP {}", r.status);
        return fmt::format("HTTP {} {}: {}", r.status, e.code, e.message);
    }

    static std::string describe(const std::string& what, const HttpResponse& r) {
        return what + ": " + describe_status(r);
    }

    /// Throws the error an unexpected answer means (see s3_store.hpp and bartl(7) STORES).
    [[noreturn]] void fail(const std::string& what, const HttpResponse& r, Access access) const {
        const auto e = parse_s3_error(r.body);
        const std::string detail = describe(what, r);
        if (e.code == "NoSuchBucket" || (r.status == 404 && e.code.empty() && access == Access::read))
            throw StoreUnavailable(fmt::format("{} (bucket {} does not exist at {}: a wrong bucket name, endpoint "
                                               "or region?)",
                                               detail, loc.bucket, authority));
        if (e.code == "InvalidAccessKeyId" || e.code == "SignatureDoesNotMatch" || e.code == "InvalidToken" ||
            e.code == "ExpiredToken" || e.code == "TokenRefreshRequired")
            throw StoreUnavailable(fmt::format("{} (the S3 credentials are wrong or expired: check the access key ID "
                                               "and secret in the environment or the credential aws-credentials)",
                                               detail));
        if (e.code == "AuthorizationHeaderMalformed" || e.code == "PermanentRedirect" || r.status == 301)
            throw StoreUnavailable(fmt::format("{} (is [store.s3] region or endpoint right?)", detail));
        if (r.status == 403 && access == Access::write)
            throw StoreReadOnly(fmt::format("{} (the credentials may read but not write this bucket)", detail));
        if (r.status == 403)
            throw StoreUnavailable(fmt::format("{} (access denied: wrong credentials, or they lack permission for "
                                               "bucket {} or prefix {})",
                                               detail, loc.bucket, loc.prefix.empty() ? "/" : loc.prefix));
        throw StoreUnavailable(detail);
    }

    std::string what(const std::string& action) const { return fmt::format("store {}: {}", url, action); }

    std::vector<std::string> body_headers(bool with_storage_class) const {
        std::vector<std::string> h{"Content-Type: application/octet-stream"};
        if (with_storage_class && !settings.s3.storage_class.empty())
            h.push_back("x-amz-storage-class: " + settings.s3.storage_class);
        return h;
    }

    /// HeadObject: the ETag, or std::nullopt when the object does not exist.
    std::optional<std::string> head(const Context& ctx, const std::string& name) {
        HttpRequest req;
        req.method = "HEAD";
        req.url = url_for(key(name));
        const auto w = what("looking up " + name);
        auto r = call(ctx, w, req);
        if (r.status == 404) return std::nullopt;
        if (r.status != 200) fail(w, r, Access::read);
        return r.headers["etag"];
    }

    /// HeadBucket: throws unless the bucket answers.
    void head_bucket(const Context& ctx) {
        HttpRequest req;
        req.method = "HEAD";
        req.url = url_for("");
        const auto w = what("looking up bucket " + loc.bucket);
        auto r = call(ctx, w, req);
        if (r.status != 200) fail(w, r, Access::read);
    }

    /// PutObject of a whole small object; returns the ETag.
    std::string put_object(const Context& ctx, const std::string& name, std::string_view data,
                           std::vector<std::string> extra = {}) {
        HttpRequest req;
        req.method = "PUT";
        req.url = url_for(key(name));
        req.headers = body_headers(true);
        for (auto& h : extra) req.headers.push_back(std::move(h));
        req.body = data;
        const auto w = what("writing " + name);
        auto r = call(ctx, w, req);
        if (r.status == 412 || r.status == 409)
            throw PreconditionFailed(fmt::format("{}: the server refused the conditional write (HTTP {})", w, r.status));
        if (r.status != 200) fail(w, r, Access::write);
        return r.headers["etag"];
    }

    std::string create_multipart(const Context& ctx, const std::string& name) {
        HttpRequest req;
        req.method = "POST";
        req.url = url_for(key(name), s3_canonical_query({{"uploads", ""}}));
        req.headers = body_headers(true);
        const auto w = what("starting the upload of " + name);
        auto r = call(ctx, w, req);
        if (r.status != 200) fail(w, r, Access::write);
        try {
            return parse_upload_id(r.body);
        } catch (const std::invalid_argument& e) {
            throw StoreUnavailable(fmt::format("{}: {}", w, e.what()));
        }
    }

    std::string upload_part(const Context& ctx, const std::string& name, const std::string& upload_id, unsigned n,
                            std::string_view data) {
        HttpRequest req;
        req.method = "PUT";
        req.url = url_for(key(name), s3_canonical_query({{"partNumber", std::to_string(n)}, {"uploadId", upload_id}}));
        req.headers = body_headers(false);
        req.body = data;
        const auto w = what(fmt::format("uploading part {} of {}", n, name));
        auto r = call(ctx, w, req);
        if (r.status != 200) fail(w, r, Access::write);
        auto etag = r.headers["etag"];
        if (etag.empty()) throw StoreUnavailable(w + ": the answer has no ETag");
        return etag;
    }

    void complete_multipart(const Context& ctx, const std::string& name, const std::string& upload_id,
                            const std::vector<std::string>& etags, std::uint64_t size) {
        HttpRequest req;
        req.method = "POST";
        req.url = url_for(key(name), s3_canonical_query({{"uploadId", upload_id}}));
        req.headers = {"Content-Type: application/xml"};
        const std::string body = complete_multipart_xml(etags);
        req.body = body;
        const auto w = what("completing the upload of " + name);
        auto r = call(ctx, w, req);
        const auto e = parse_s3_error(r.body);
        if (r.status == 200 && e.code.empty()) return;
        if (r.status == 404 && e.code == "NoSuchUpload") {
            // A retry after an answer that got lost: the first try completed it.
            HttpRequest h;
            h.method = "HEAD";
            h.url = url_for(key(name));
            auto hr = call(ctx, w, h);
            if (hr.status == 200 && hr.headers["content-length"] == std::to_string(size)) return;
        }
        fail(w, r, Access::write);
    }

    void abort_multipart(const Context& ctx, const std::string& name, const std::string& upload_id) {
        HttpRequest req;
        req.method = "DELETE";
        req.url = url_for(key(name), s3_canonical_query({{"uploadId", upload_id}}));
        const auto w = what(fmt::format("aborting the upload {} of {}", upload_id, name));
        auto r = call(ctx, w, req);
        if (r.status == 204 || r.status == 200 || (r.status == 404 && parse_s3_error(r.body).code == "NoSuchUpload"))
            return;
        fail(w, r, Access::write);
    }

    /// A context for cleanup that runs even after a stop request: its own token, bounded by
    /// call_timeout and the caller's deadline.
    Context cleanup_context(const Context& ctx) const {
        Context c;
        c.cancel = CancelToken();
        c.deadline = ctx.deadline.earliest(Deadline::after(settings.call_timeout));
        return c;
    }
};

namespace {

/// A multipart upload (or, below one part, a single PUT at commit()).
class S3Writer : public ObjectWriter {
public:
    S3Writer(std::shared_ptr<S3Core> core, const Context& ctx, std::string name)
        : core_(std::move(core)), ctx_(ctx.child()), name_(std::move(name)),
          part_size_(static_cast<std::size_t>(core_->settings.s3.part_size)),
          max_buffers_(std::max(1u, core_->settings.s3.parts_in_flight)) {}

    ~S3Writer() override { stop_workers(); }  // local only: the upload stays for cleanup
    S3Writer(const S3Writer&) = delete;
    S3Writer& operator=(const S3Writer&) = delete;

    void write(const void* data, std::size_t n) override {
        if (committed_ || aborted_)
            throw RuntimeError(fmt::format("store {}: write to {} after commit or abort", core_->url, name_));
        rethrow_failure();
        const char* p = static_cast<const char*>(data);
        while (n > 0) {
            if (cur_.capacity() < part_size_) cur_.reserve(part_size_);
            const std::size_t take = std::min(n, part_size_ - cur_.size());
            cur_.append(p, take);
            p += take;
            n -= take;
            total_ += take;
            if (cur_.size() == part_size_) submit(true);
        }
    }

    void commit(const Context& ctx) override {
        if (committed_ || aborted_)
            throw RuntimeError(fmt::format("store {}: {} committed twice or after abort", core_->url, name_));
        rethrow_failure();
        ctx.check(core_->what("commit of " + name_));
        if (upload_id_.empty()) {
            core_->put_object(ctx, name_, cur_);
        } else {
            if (!cur_.empty()) submit(false);
            {
                std::unique_lock lock(m_);
                cv_.wait(lock, [&] { return busy_ == 0 || failure_; });
            }
            rethrow_failure();
            core_->complete_multipart(ctx, name_, upload_id_, etags_, total_);
        }
        committed_ = true;
        stop_workers();
        std::string().swap(cur_);
    }

    void abort(const Context& ctx) override {
        if (committed_ || aborted_) return;
        aborted_ = true;
        stop_workers();
        std::string().swap(cur_);
        if (upload_id_.empty()) return;  // nothing reached the store
        // Cleanup runs even when the stop request is why we abort: one bounded request.
        const bool stopping = ctx.cancel.cancelled();
        const Context c = stopping ? core_->cleanup_context(ctx) : ctx;
        core_->abort_multipart(c, name_, upload_id_);
    }

private:
    struct Job {
        unsigned number;
        std::string data;
    };

    void rethrow_failure() {
        std::lock_guard lock(m_);
        if (failure_) std::rethrow_exception(failure_);
    }

    /// Hands the full buffer to the workers; with `bound`, waits until a buffer is free, so at
    /// most parts_in_flight buffers (the one being filled included) exist.
    void submit(bool bound) {
        if (upload_id_.empty()) upload_id_ = core_->create_multipart(ctx_, name_);
        if (next_part_ > kMaxParts)
            throw RuntimeError(fmt::format("store {}: {} needs more than {} parts of {} bytes: raise [store.s3] "
                                           "part_size",
                                           core_->url, name_, kMaxParts, part_size_));
        if (workers_.empty())
            for (unsigned i = 0; i < max_buffers_; ++i) workers_.emplace_back([this] { work(); });
        std::unique_lock lock(m_);
        etags_.emplace_back();
        queue_.push_back(Job{next_part_++, std::move(cur_)});
        ++busy_;
        cv_.notify_all();
        if (bound) cv_.wait(lock, [&] { return busy_ < max_buffers_ || failure_; });
        if (failure_) std::rethrow_exception(failure_);
        cur_ = std::string();
        if (!spare_.empty()) {
            cur_ = std::move(spare_.back());
            spare_.pop_back();
        }
        cur_.clear();
    }

    void work() {
        for (;;) {
            Job job;
            {
                std::unique_lock lock(m_);
                cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
                if (stopping_) return;
                job = std::move(queue_.front());
                queue_.pop_front();
            }
            std::string etag;
            std::exception_ptr err;
            try {
                etag = core_->upload_part(ctx_, name_, upload_id_, job.number, job.data);
            } catch (...) {
                err = std::current_exception();
            }
            std::lock_guard lock(m_);
            if (err && !failure_) {
                failure_ = err;
                ctx_.cancel.cancel("another part of the upload failed");  // the other parts stop too
            }
            if (!err) etags_[job.number - 1] = std::move(etag);
            --busy_;
            job.data.clear();
            spare_.push_back(std::move(job.data));
            cv_.notify_all();
        }
    }

    void stop_workers() {
        {
            std::lock_guard lock(m_);
            if (workers_.empty()) return;
            stopping_ = true;
            if (!committed_) ctx_.cancel.cancel("upload abandoned");
        }
        cv_.notify_all();
        for (auto& t : workers_) t.join();
        workers_.clear();
        spare_.clear();
        queue_.clear();
    }

    std::shared_ptr<S3Core> core_;
    Context ctx_;  // for the parts: a child, so a failed part can stop the others
    std::string name_;
    std::size_t part_size_;
    unsigned max_buffers_;
    std::string cur_;  // the part being filled
    std::string upload_id_;
    unsigned next_part_ = 1;
    std::uint64_t total_ = 0;  // bytes written
    bool committed_ = false;
    bool aborted_ = false;

    std::mutex m_;  // guards what the workers share:
    std::condition_variable cv_;
    std::deque<Job> queue_;
    unsigned busy_ = 0;  // parts queued or uploading
    std::vector<std::string> etags_;
    std::vector<std::string> spare_;  // emptied part buffers, reused
    std::exception_ptr failure_;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

/// A streaming GET on a thread of its own, read ahead at most kReadAhead bytes; resumes with
/// Range: bytes=POS- (and If-Match on the first answer's ETag) after a dropped connection.
class S3Reader : public ByteSource {
public:
    S3Reader(std::shared_ptr<S3Core> core, const Context& ctx, std::string name, std::uint64_t offset)
        : core_(std::move(core)), ctx_(ctx.child()), name_(std::move(name)), pos_(offset) {
        thread_ = std::thread([this] { run(); });
        std::unique_lock lock(m_);
        cv_.wait(lock, [&] { return started_ || done_ || error_; });
        if (error_ && !started_) {
            auto e = error_;
            lock.unlock();
            thread_.join();
            std::rethrow_exception(e);
        }
    }

    ~S3Reader() override {
        {
            std::lock_guard lock(m_);
            closed_ = true;
        }
        ctx_.cancel.cancel("download closed");
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }
    S3Reader(const S3Reader&) = delete;
    S3Reader& operator=(const S3Reader&) = delete;

    std::size_t read(void* data, std::size_t n) override {
        std::unique_lock lock(m_);
        cv_.wait(lock, [&] { return buffered_ > 0 || done_ || error_; });
        if (buffered_ == 0) {
            if (error_) std::rethrow_exception(error_);
            return 0;
        }
        char* out = static_cast<char*>(data);
        std::size_t copied = 0;
        while (copied < n && !chunks_.empty()) {
            auto& front = chunks_.front();
            const std::size_t take = std::min(n - copied, front.size() - front_pos_);
            std::memcpy(out + copied, front.data() + front_pos_, take);
            copied += take;
            front_pos_ += take;
            if (front_pos_ == front.size()) {
                chunks_.pop_front();
                front_pos_ = 0;
            }
        }
        buffered_ -= copied;
        cv_.notify_all();
        return copied;
    }

private:
    void run() {
        try {
            const auto w = core_->what("reading " + name_);
            for (bool finished = false; !finished;) {
                // One retry budget per stretch without progress: a long download may survive
                // any number of dropped connections, as long as each one resumes.
                with_retries(
                    ctx_, core_->policy, w,
                    [&] {
                        const std::uint64_t before = pos_;
                        try {
                            finished = fetch(w);
                        } catch (const TransientStoreError&) {
                            if (pos_ > before) return;  // resumes at once from pos_
                            throw;
                        }
                    },
                    [&](unsigned n, const std::string& error) {
                        log::debug(fmt::format("{} (try {} failed at byte {}: {}; retrying)", w, n, pos_, error));
                    });
            }
            std::lock_guard lock(m_);
            done_ = true;
        } catch (const ReaderClosed&) {
            std::lock_guard lock(m_);
            done_ = true;
        } catch (...) {
            std::lock_guard lock(m_);
            error_ = std::current_exception();
        }
        cv_.notify_all();
    }

    /// One GET from pos_; true when the object has been read to its end.
    bool fetch(const std::string& w) {
        HttpRequest req;
        req.url = core_->url_for(core_->key(name_));
        if (pos_ > 0) req.headers.push_back(fmt::format("Range: bytes={}-", pos_));
        if (!etag_.empty()) req.headers.push_back("If-Match: " + etag_);
        req.streaming = true;
        core_->add_common_headers(req, kEmptySha256);
        std::optional<std::uint64_t> end;  // bytes of the whole object
        req.on_headers = [&](long status, const std::map<std::string, std::string>& h) {
            if (status / 100 != 2) return;
            const auto et = h.find("etag");
            if (etag_.empty() && et != h.end()) etag_ = et->second;
            if (status == 206) {
                const auto cr = h.find("content-range");  // bytes START-END/TOTAL
                std::uint64_t start = 0, total = 0;
                if (cr == h.end() ||
                    std::sscanf(cr->second.c_str(), "bytes %" SCNu64 "-%*u/%" SCNu64, &start, &total) != 2 || start != pos_)
                    throw StoreUnavailable(fmt::format("{}: the server answered a range from byte {} with \"{}\"", w,
                                                       pos_, cr == h.end() ? "" : cr->second));
                end = total;
            } else {
                if (pos_ > 0)
                    throw StoreUnavailable(fmt::format("{}: the server ignored the Range request (from byte {})", w,
                                                       pos_));
                const auto cl = h.find("content-length");
                if (cl != h.end()) end = std::strtoull(cl->second.c_str(), nullptr, 10);
            }
            std::lock_guard lock(m_);
            started_ = true;
            cv_.notify_all();
        };
        req.on_data = [&](const char* data, std::size_t n) { push(data, n); };
        auto cl = core_->acquire();
        HttpResponse r = cl->perform(ctx_, req, w);
        core_->release(std::move(cl));
        if (r.status / 100 == 2) {
            if (end && pos_ < *end)
                throw TransientStoreError(fmt::format("the answer ended at byte {} of {}", pos_, *end));
            return true;
        }
        if (r.status == 416 && etag_.empty()) return true;  // opened at (or past) the end
        if (r.status == 404) {
            if (parse_s3_error(r.body).code == "NoSuchBucket") core_->fail(w, r, S3Core::Access::read);
            throw NotFound(fmt::format("store {}: {} not found", core_->url, name_));
        }
        if (r.status == 412)
            throw RuntimeError(fmt::format("{}: the object was replaced while it was being read (at byte {})", w, pos_));
        if (s3_status_transient(r.status)) throw TransientStoreError(S3Core::describe_status(r));
        core_->fail(w, r, S3Core::Access::read);
    }

    void push(const char* data, std::size_t n) {
        std::unique_lock lock(m_);
        cv_.wait(lock, [&] { return buffered_ < kReadAhead || closed_; });
        if (closed_) throw ReaderClosed{};
        if (chunks_.empty() || chunks_.back().size() >= kChunk) {
            chunks_.emplace_back();
            chunks_.back().reserve(std::max(kChunk, n));
        }
        chunks_.back().append(data, n);
        buffered_ += n;
        pos_ += n;
        cv_.notify_all();
    }

    std::shared_ptr<S3Core> core_;
    Context ctx_;
    std::string name_;
    std::uint64_t pos_;  // the next byte of the object to fetch
    std::string etag_;   // of the first answer: resumes must read the same object

    std::mutex m_;
    std::condition_variable cv_;
    std::deque<std::string> chunks_;
    std::size_t front_pos_ = 0;
    std::size_t buffered_ = 0;
    bool started_ = false;
    bool done_ = false;
    bool closed_ = false;
    std::exception_ptr error_;
    std::thread thread_;
};

}  // namespace

S3Store::S3Store(std::string url, const StoreOptions& options)
    : core_(std::make_shared<S3Core>(std::move(url), options)) {}

S3Store::~S3Store() = default;

std::string S3Store::url() const { return core_->url; }

const S3Location& S3Store::location() const { return core_->loc; }

std::vector<ObjectInfo> S3Store::list(const Context& ctx, const std::string& prefix) {
    const auto w = core_->what("listing");
    ctx.check(w);
    const std::string base = core_->loc.prefix.empty() ? "" : core_->loc.prefix + "/";
    std::vector<ObjectInfo> out;
    std::string token;
    for (;;) {
        std::vector<std::pair<std::string, std::string>> q{{"list-type", "2"}, {"prefix", base + prefix}};
        if (!token.empty()) q.emplace_back("continuation-token", token);
        HttpRequest req;
        req.url = core_->url_for("", s3_canonical_query(q));
        auto r = core_->call(ctx, w, req);
        if (r.status != 200) core_->fail(w, r, S3Core::Access::read);
        S3ListPage page;
        try {
            page = parse_list_objects_v2(r.body);
        } catch (const std::exception& e) {
            throw StoreUnavailable(fmt::format("{}: the answer does not parse: {}", w, e.what()));
        }
        for (auto& o : page.objects) {
            if (o.key.compare(0, base.size(), base) != 0) continue;
            std::string name = o.key.substr(base.size());
            if (!valid_name(name)) continue;  // "directories" below the prefix are not ours
            out.push_back(ObjectInfo{std::move(name), o.size, o.last_modified});
        }
        if (!page.truncated) break;
        token = page.next_token;
    }
    std::sort(out.begin(), out.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
    return out;
}

std::unique_ptr<ByteSource> S3Store::open(const Context& ctx, const std::string& name, std::uint64_t offset) {
    ctx.check(core_->what("opening " + name));
    if (!valid_name(name))
        throw NotFound(fmt::format("store {}: {} not found (not a valid object name)", core_->url, name));
    return std::make_unique<S3Reader>(core_, ctx, name, offset);
}

std::optional<SmallObject> S3Store::get(const Context& ctx, const std::string& name, std::size_t max_bytes) {
    const auto w = core_->what("reading " + name);
    ctx.check(w);
    if (!valid_name(name)) throw RuntimeError(fmt::format("store {}: invalid object name \"{}\"", core_->url, name));
    HttpRequest req;
    req.url = core_->url_for(core_->key(name));
    req.max_body = std::max<std::size_t>(max_bytes, 64u << 10);
    req.on_headers = [&](long status, const std::map<std::string, std::string>& h) {
        const auto cl = h.find("content-length");
        if (status == 200 && cl != h.end() && std::strtoull(cl->second.c_str(), nullptr, 10) > max_bytes)
            throw RuntimeError(fmt::format("store {}: {} is {} bytes, more than the {} expected", core_->url, name,
                                           cl->second, max_bytes));
    };
    auto r = core_->call(ctx, w, req);
    if (r.status == 404) {
        if (parse_s3_error(r.body).code == "NoSuchBucket") core_->fail(w, r, S3Core::Access::read);
        return std::nullopt;
    }
    if (r.status != 200) core_->fail(w, r, S3Core::Access::read);
    if (r.body.size() > max_bytes)
        throw RuntimeError(fmt::format("store {}: {} is larger than {} bytes", core_->url, name, max_bytes));
    return SmallObject{std::move(r.body), r.headers["etag"]};
}

std::string S3Store::put(const Context& ctx, const std::string& name, const std::string& data,
                         const WriteCondition& cond) {
    const auto w = core_->what("writing " + name);
    ctx.check(w);
    if (!valid_name(name)) throw RuntimeError(fmt::format("store {}: invalid object name \"{}\"", core_->url, name));
    if (cond.kind == WriteCondition::Kind::none) return core_->put_object(ctx, name, data);
    // The check before: servers that ignore the conditional headers still refuse a write
    // whose condition failed before it began.
    const auto current = core_->head(ctx, name);
    if (cond.kind == WriteCondition::Kind::if_absent && current)
        throw PreconditionFailed(fmt::format("store {}: {} already exists", core_->url, name));
    if (cond.kind == WriteCondition::Kind::if_match && (!current || *current != cond.etag))
        throw PreconditionFailed(fmt::format("store {}: {} was {} since it was read", core_->url, name,
                                             current ? "replaced" : "removed"));
    std::vector<std::string> condition{cond.kind == WriteCondition::Kind::if_absent ? "If-None-Match: *"
                                                                                   : "If-Match: " + cond.etag};
    std::string etag;
    try {
        etag = core_->put_object(ctx, name, data, condition);
    } catch (const PreconditionFailed&) {
        // A retried PUT whose first try got through is refused by its own write: look.
        auto now = get(ctx, name, std::max<std::size_t>(data.size(), 1));
        if (now && now->data == data) return now->etag;
        throw PreconditionFailed(fmt::format("store {}: {} was changed by another writer at the same moment",
                                             core_->url, name));
    }
    // The read back after: where the server ignored the condition, a writer that raced us
    // between our check and our PUT shows here (bartl(7) STORES, "Fencing").
    auto back = get(ctx, name, std::max<std::size_t>(data.size(), 1) + (64u << 10));
    if (!back || back->data != data)
        throw PreconditionFailed(fmt::format("store {}: {} was changed by another writer at the same moment",
                                             core_->url, name));
    return back->etag.empty() ? etag : back->etag;
}

std::unique_ptr<ObjectWriter> S3Store::create(const Context& ctx, const std::string& name) {
    ctx.check(core_->what("writing " + name));
    if (!valid_name(name)) throw RuntimeError(fmt::format("store {}: invalid object name \"{}\"", core_->url, name));
    // Missing credentials, a wrong bucket or an unreachable server fail here, before a backup
    // spends its time compressing.
    core_->head_bucket(ctx);
    return std::make_unique<S3Writer>(core_, ctx, name);
}

void S3Store::remove(const Context& ctx, const std::string& name) {
    const auto w = core_->what("removing " + name);
    ctx.check(w);
    if (!valid_name(name)) throw RuntimeError(fmt::format("store {}: invalid object name \"{}\"", core_->url, name));
    HttpRequest req;
    req.method = "DELETE";
    req.url = core_->url_for(core_->key(name));
    auto r = core_->call(ctx, w, req);
    if (r.status == 204 || r.status == 200) return;
    if (r.status == 404 && parse_s3_error(r.body).code != "NoSuchBucket") return;
    core_->fail(w, r, S3Core::Access::write);
}

void S3Store::remove_many(const Context& ctx, const std::vector<std::string>& names) {
    for (std::size_t at = 0; at < names.size(); at += kS3DeleteObjectsMax) {
        const std::vector<std::string> batch(names.begin() + at,
                                             names.begin() + std::min(names.size(), at + kS3DeleteObjectsMax));
        std::vector<std::string> keys;
        for (const auto& n : batch) {
            if (!valid_name(n)) throw RuntimeError(fmt::format("store {}: invalid object name \"{}\"", core_->url, n));
            keys.push_back(core_->key(n));
        }
        const auto w = core_->what(batch.size() == 1 ? "removing " + batch.front()
                                                     : fmt::format("removing {} objects ({} ...)", batch.size(),
                                                                   batch.front()));
        ctx.check(w);
        const std::string body = delete_objects_xml(keys);
        HttpRequest req;
        req.method = "POST";
        req.url = core_->url_for("", s3_canonical_query({{"delete", ""}}));
        // S3 refuses DeleteObjects without a checksum of the body.
        req.headers = {"Content-Type: application/xml", "Content-MD5: " + base64_md5(body)};
        req.body = body;
        auto r = core_->call(ctx, w, req);
        if (r.status != 200) core_->fail(w, r, S3Core::Access::write);
        std::vector<S3DeleteError> errors;
        try {
            errors = parse_delete_result(r.body);
        } catch (const std::exception& e) {
            throw StoreUnavailable(fmt::format("{}: the answer does not parse: {}", w, e.what()));
        }
        if (!errors.empty())
            throw StoreUnavailable(fmt::format("{}: {} of them stayed, first {}: {} {}", w, errors.size(),
                                               errors.front().key, errors.front().code, errors.front().message));
    }
}

unsigned S3Store::remove_abandoned_uploads(const Context& ctx, const std::string& prefix, std::chrono::seconds age) {
    const auto w = core_->what("listing unfinished uploads");
    ctx.check(w);
    const std::string base = core_->loc.prefix.empty() ? "" : core_->loc.prefix + "/";
    const auto cutoff = std::chrono::system_clock::now() - age;
    std::vector<S3Upload> old;
    std::string key_marker, id_marker;
    for (;;) {
        std::vector<std::pair<std::string, std::string>> q{{"uploads", ""}, {"prefix", base + prefix}};
        if (!key_marker.empty()) q.emplace_back("key-marker", key_marker);
        if (!id_marker.empty()) q.emplace_back("upload-id-marker", id_marker);
        HttpRequest req;
        req.url = core_->url_for("", s3_canonical_query(q));
        auto r = core_->call(ctx, w, req);
        if (r.status == 501) {
            log::info(fmt::format("{}: the server does not list multipart uploads; none cleaned", w));
            return 0;
        }
        if (r.status != 200) core_->fail(w, r, S3Core::Access::read);
        S3UploadPage page;
        try {
            page = parse_list_multipart_uploads(r.body);
        } catch (const std::exception& e) {
            throw StoreUnavailable(fmt::format("{}: the answer does not parse: {}", w, e.what()));
        }
        for (auto& u : page.uploads)
            if (u.key.compare(0, base.size(), base) == 0 && valid_name(u.key.substr(base.size())) &&
                u.initiated < cutoff)
                old.push_back(std::move(u));
        if (!page.truncated) break;
        key_marker = page.next_key_marker;
        id_marker = page.next_upload_id_marker;
    }
    unsigned removed = 0;
    for (const auto& u : old) {
        core_->abort_multipart(ctx, u.key.substr(base.size()), u.upload_id);
        log::info(fmt::format("store {}: aborted the unfinished upload {} of {} (started {})", core_->url, u.upload_id,
                              u.key, format_rfc3339(std::chrono::floor<std::chrono::seconds>(u.initiated))));
        ++removed;
    }
    return removed;
}

std::string S3Store::conditional_write_guarantee() const {
    return "If-None-Match: * / If-Match: ETAG on the PUT, atomic where the server honours them (AWS S3, MinIO, "
           "Ceph RGW); elsewhere (s3rver, older servers) a HEAD before and a read back after each conditional "
           "write, which leaves a window of about one round trip in which two writers can both succeed (bartl(7), "
           "Fencing)";
}

}  // namespace bartl
