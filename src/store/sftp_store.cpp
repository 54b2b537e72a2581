// sftp:// store. Each store call is one or a few SFTP requests through libcurl's easy
// interface, on connections kept in a small pool (a new SSH connection costs a key exchange
// and an authentication, a request on a kept one a round trip or two). The requests:
//   listing    GET of "DIR/" with CURLOPT_FILETIME (the directory's exact time, to calibrate
//              the listed times against)
//   stat       CURLOPT_NOBODY + CURLOPT_FILETIME: the modification time (-1: missing) and size
//   read       GET, CURLOPT_RESUME_FROM_LARGE for an offset
//   upload     CURLOPT_UPLOAD of a hidden temporary name
//   rename, rm, mkdir, rmdir
//              CURLOPT_QUOTE commands before a stat of the object they touched
#include "store/sftp_store.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <ctime>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "blob/pipe.hpp"
#include "core/sftp_listing.hpp"
#include "store/file_store.hpp"
#include "store/retry.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/sha256.hpp"
#include "util/sshsig.hpp"

namespace bartl {
namespace {

/// The lock of conditional writes (a directory: SFTP's MKDIR is atomic on the server).
constexpr const char* kLockDir = ".bartl-store.lock.d";
/// A lock older than this (server clock) was left by a writer that died holding it.
constexpr std::chrono::seconds kStaleLock{300};
/// Work under the lock gives up after this, well before the lock would count as stale.
constexpr std::chrono::seconds kLockHold{120};
/// A reader that finds an object missing while the lock is held waits this long for it.
constexpr std::chrono::seconds kReaderWait{30};
/// Streams: a bounded pipe of kChunks chunks of kChunkBytes between the caller and curl.
constexpr std::size_t kChunkBytes = 256 * 1024;
constexpr std::size_t kChunks = 16;
/// curl's buffers for SFTP reads and writes (libssh2 keeps that much in flight).
constexpr long kCurlBuffer = 512 * 1024;
/// Uploads: libcurl's largest upload buffer (2 MiB), as much as OpenSSH's sftp keeps in flight
/// (64 requests of 32 KiB).
constexpr long kCurlUploadBuffer = 2 * 1024 * 1024;
/// Idle connections kept for reuse.
constexpr std::size_t kPoolSize = 4;
/// Removals per request in remove_many(): each is one SFTP round trip on the open session
/// rather than a request of its own; the listing that follows each batch bounds the cost.
/// 100: one request must end within [store] call_timeout (60 s by default) even at a 300 ms
/// round trip or on a slow server filesystem, or its retries would never get past it.
constexpr std::size_t kRemoveBatch = 100;
/// The largest object an if_match put() compares (the store identity is at most 64 KiB).
constexpr std::size_t kMaxConditional = 16 << 20;

void curl_init_once() {
    static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) throw RuntimeError(fmt::format("cannot initialise libcurl: {}", curl_easy_strerror(rc)));
}

/// A path as a URL path: every byte but unreserved ones and '/' percent-encoded.
std::string url_escape(const std::string& path) {
    std::string out;
    for (unsigned char c : path) {
        if (std::isalnum(c) || c == '/' || c == '-' || c == '.' || c == '_' || c == '~')
            out += static_cast<char>(c);
        else
            out += fmt::format("%{:02X}", c);
    }
    return out;
}

/// A path as curl's quote commands read it: in double quotes, '"' and '\' escaped.
std::string quoted(const std::string& path) {
    std::string out = "\"";
    for (char c : path) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string sha256_hex(const std::string& data) {
    Sha256 h;
    h.update(data.data(), data.size());
    return h.hex();
}

/// The etag of a small object: time and size change with almost every replacement, the
/// content hash with the rest (two replacements of the same size in one second).
std::string etag_of(std::int64_t mtime, const std::string& data) {
    return fmt::format("{:x}-{:x}-{}", mtime, data.size(), sha256_hex(data).substr(0, 16));
}

/// Where an object `name` being replaced is moved aside: ".NAME.old-HOST-PID-XXXXXXXX".
std::string aside_name(const std::string& name) {
    std::string t = upload_temp_name(name);
    const auto at = t.rfind(".tmp-");
    return t.replace(at, 5, ".old-");
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

/// Sleeps `d` in slices, ending at once for a stop request (StopRequested) or the deadline
/// of `ctx` (RuntimeError).
void pause_for(const Context& ctx, std::chrono::milliseconds d, const std::string& what) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
        ctx.check(what);
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
            until - std::chrono::steady_clock::now(), std::chrono::milliseconds(50)));
    }
}

/// A request's progress watch, called by curl at least once a second: stops the transfer
/// when the context is cancelled, the owner says stop, or (streams) no byte moved for `stall`.
struct Watch {
    const Context* ctx = nullptr;
    const std::atomic<bool>* stop = nullptr;
    std::chrono::milliseconds stall{0};  ///< 0: no stall check (the request has a total timeout)
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    curl_off_t last_dl = 0, last_ul = 0;
    enum class Why { none, cancelled, stopped, stalled } why = Why::none;

    /// The caller's side moved (a callback returned after waiting for it): not a stall.
    void touch() { last = std::chrono::steady_clock::now(); }

    static int callback(void* p, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow) {
        auto& w = *static_cast<Watch*>(p);
        if (w.stop && w.stop->load()) return w.why = Why::stopped, 1;
        if (w.ctx->cancel.cancelled()) return w.why = Why::cancelled, 1;
        const auto now = std::chrono::steady_clock::now();
        if (dlnow != w.last_dl || ulnow != w.last_ul) {
            w.last_dl = dlnow;
            w.last_ul = ulnow;
            w.last = now;
        } else if (w.stall.count() > 0 && now - w.last > w.stall) {
            return w.why = Why::stalled, 1;
        }
        return 0;
    }
};

/// One SFTP request.
struct Request {
    std::string path;  ///< the remote path (a directory listing ends in '/')
    bool nobody = false;
    bool filetime = false;
    std::vector<std::string> quote;  ///< commands run before the transfer, in order
    bool upload = false;
    std::uint64_t resume_from = 0;
    /// A stream: no total timeout, but a stall check; the context's deadline still applies.
    bool stream = false;
    /// Upload data: fills up to n bytes, returns how many (0: the end); throws to abort.
    std::function<std::size_t(char*, std::size_t)> read;
    /// Downloaded data: false stops the transfer.
    std::function<bool(const char*, std::size_t)> write;
    const std::atomic<bool>* stop = nullptr;
};

/// What a request came to.
struct Outcome {
    CURLcode rc = CURLE_OK;
    std::string error;          ///< curl's message, "" when it has none
    std::int64_t filetime = -1;  ///< CURLOPT_FILETIME: seconds since the epoch; -1 missing
    std::int64_t size = -1;      ///< the remote file's size (stat, download); -1 unknown
    int host_key = -1;           ///< the curl_khmatch the host key check saw; -1: not checked
    Watch::Why why = Watch::Why::none;
    std::exception_ptr callback_error;  ///< what a read or write callback threw

    bool ok() const { return rc == CURLE_OK; }
    /// The message curl gave, or its code's text.
    std::string text() const { return error.empty() ? curl_easy_strerror(rc) : error; }
    bool quote_failed_with(const char* what) const {
        return rc == CURLE_QUOTE_ERROR && error.find(what) != std::string::npos;
    }
};

/// Whether the key file at `key` needs a passphrase (false when it cannot be read: the
/// message about that comes from elsewhere).
bool key_has_passphrase(const std::filesystem::path& key) {
    try {
        const auto text = fs::read_file(key);
        return text && private_key_has_passphrase(*text);
    } catch (const std::exception&) {
        return false;
    }
}

}  // namespace

struct SftpStore::Shared {
    std::string url;
    SftpLocation where;
    std::string user;
    std::string base;  ///< "sftp://HOST:PORT"
    std::optional<std::filesystem::path> key;
    std::string key_origin;  ///< where the key comes from, for messages
    std::filesystem::path known_hosts;
    RetryPolicy policy;
    std::chrono::milliseconds call_timeout;

    std::mutex mu;
    std::vector<CURL*> idle;  // connections kept for reuse

    ~Shared() {
        for (CURL* h : idle) curl_easy_cleanup(h);
    }

    // --- paths ------------------------------------------------------------------------------

    /// The remote path of `name` as quote commands take it (relative: in the login directory).
    std::string remote(const std::string& name) const {
        if (where.dir == "~") return name;
        if (starts_with(where.dir, "~/")) return where.dir.substr(2) + "/" + name;
        return where.dir + "/" + name;
    }
    /// The URL path of `name` ("" for the directory itself, with its trailing '/').
    std::string url_path(const std::string& name) const {
        const std::string dir = where.dir == "~" ? "/~" : starts_with(where.dir, "~/") ? "/" + where.dir : where.dir;
        return url_escape(dir + "/" + name);
    }
    std::string dir_text() const { return where.dir; }
    std::string host_port() const {
        const std::string host = where.host.find(':') != std::string::npos ? "[" + where.host + "]" : where.host;
        return fmt::format("{}:{}", host, where.port);
    }
    /// The host as known_hosts names it: HOST for port 22, else [HOST]:PORT.
    std::string known_hosts_name() const {
        return where.port == 22 ? where.host : fmt::format("[{}]:{}", where.host, where.port);
    }

    // --- errors -----------------------------------------------------------------------------

    std::string say(const std::string& what) const { return fmt::format("store {}: {}", url, what); }

    /// For cleaning up after a failed call: `ctx`'s cancellation, but a deadline of its own
    /// (the failure may have been `ctx`'s deadline).
    Context cleanup(const Context& ctx) const { return Context{ctx.cancel.child(), Deadline::after(call_timeout)}; }

    [[noreturn]] void missing_dir() const {
        throw StoreUnavailable(say(fmt::format("directory {} does not exist on {} (or is not a directory); bartl "
                                               "never creates it: is [backup] store the right server and path?",
                                               dir_text(), host_port())));
    }

    /// Throws what a failed request means. `writing`: permission denied is StoreReadOnly.
    /// Failures that may pass are TransientStoreError (the retry loop tries again).
    [[noreturn]] void fail(const Context& ctx, const Outcome& o, const std::string& what, bool writing) const {
        if (o.callback_error) std::rethrow_exception(o.callback_error);
        switch (o.why) {
            case Watch::Why::cancelled:
                ctx.cancel.check(say(what));
                break;
            case Watch::Why::stalled:
                throw TransientStoreError(say(fmt::format("{}: no data moved for {} s (call_timeout)", what,
                                                          call_timeout.count() / 1000)));
            case Watch::Why::stopped:
                throw RuntimeError(say(what + ": stopped"));
            case Watch::Why::none:
                break;
        }
        const std::string detail = o.text();
        switch (o.rc) {
            case CURLE_COULDNT_RESOLVE_HOST:
            case CURLE_COULDNT_CONNECT:
            case CURLE_OPERATION_TIMEDOUT:
            case CURLE_SEND_ERROR:
            case CURLE_RECV_ERROR:
            case CURLE_GOT_NOTHING:
            case CURLE_PARTIAL_FILE:
            case CURLE_AGAIN:
                throw TransientStoreError(say(fmt::format("{}: {}", what, detail)));
            case CURLE_SSH:
                // "(4/-31)": the server answered with an SFTP status, so trying again will not
                // help; anything else is the SSH connection failing (reset, closed, banner).
                if (detail.find("/-31)") != std::string::npos)
                    throw RuntimeError(say(fmt::format("{}: {}", what, detail)));
                // A write the server answered with an SFTP status comes without text from
                // libssh2, and OpenSSH's sftp-server reports ENOSPC and EDQUOT as a bare
                // "Failure": name the likely cause, which "Error in the SSH layer" hides.
                if (writing && o.error.empty())
                    throw TransientStoreError(say(fmt::format(
                        "{}: {} (the server refused a write or closed the connection; SFTP gives no reason for a "
                        "refused write: is the disk on {} full, or a quota reached?)",
                        what, detail, host_port())));
                throw TransientStoreError(say(fmt::format("{}: {}", what, detail)));
            case CURLE_PEER_FAILED_VERIFICATION:
                if (o.host_key == CURLKHMATCH_MISMATCH)
                    throw StoreUnavailable(say(fmt::format(
                        "the host key of {} does not match the one {} holds for it: the server's key changed or "
                        "someone is in between; bartl does not connect. If the change is known, replace that line "
                        "(ssh-keygen -R '{}' -f {}, then add the new key checked against the server's fingerprint)",
                        host_port(), known_hosts.string(), known_hosts_name(), known_hosts.string())));
                throw StoreUnavailable(say(fmt::format(
                    "the host key of {} is not in {} ([store.sftp] known_hosts), so bartl cannot tell the server from "
                    "an impostor and does not connect; add its key as a line for {} (ssh-keyscan -t ed25519 -p {} {}, "
                    "checked against the server's fingerprint)",
                    host_port(), known_hosts.string(), known_hosts_name(), where.port, where.host)));
            case CURLE_LOGIN_DENIED:
                // libssh2 cannot load a key it has no passphrase for and says only "denied":
                // look at the key before blaming the server's authorized_keys.
                if (key && key_has_passphrase(*key))
                    throw StoreUnavailable(say(fmt::format(
                        "the key {} ({}) is protected by a passphrase, and bartld has nobody to type it: use a key "
                        "without one (ssh-keygen -t ed25519 -N '') and protect it with LoadCredentialEncrypted=sftp-key:"
                        "FILE instead (bartld(8) CREDENTIALS)",
                        key->string(), key_origin)));
                throw StoreUnavailable(say(fmt::format(
                    "{} refused the key {} ({}) for user {}: is its public key in the authorized_keys of {} on the "
                    "server? (bartl authenticates with a key only; a passphrase-protected key or an RSA key that "
                    "needs SHA-2 signatures cannot be used, an ed25519 key can)",
                    host_port(), key ? key->string() : "", key_origin, user, user)));
            case CURLE_REMOTE_ACCESS_DENIED:
                if (writing) throw StoreReadOnly(say(fmt::format("{}: permission denied ({})", what, detail)));
                throw StoreUnavailable(say(fmt::format("{}: permission denied ({})", what, detail)));
            case CURLE_REMOTE_DISK_FULL:
                throw RuntimeError(say(fmt::format("{}: the server's disk is full ({})", what, detail)));
            case CURLE_REMOTE_FILE_NOT_FOUND:
                missing_dir();
            case CURLE_QUOTE_ERROR:
                if (detail.find("Permission denied") != std::string::npos)
                    throw StoreReadOnly(say(fmt::format("{}: {}", what, detail)));
                throw RuntimeError(say(fmt::format("{}: {}", what, detail)));
            case CURLE_FAILED_INIT:
                // libcurl offers the server only the host key type of the first line known_hosts
                // holds for it; ssh-keyscan writes ssh-rsa first, which OpenSSH 8.8 and later
                // refuse (SHA-1), and libssh2 then says only "Unable to exchange encryption keys".
                if (detail.find("Unable to exchange encryption keys") != std::string::npos)
                    throw StoreUnavailable(say(fmt::format(
                        "{}: {}: no host key type in common with {}: libcurl offers only the type of the first key "
                        "{} lists for {}; when that is ssh-rsa (ssh-keyscan writes it first), which OpenSSH 8.8 and "
                        "later refuse, put the server's ed25519 line first (ssh-keyscan -t ed25519 -p {} {}, checked "
                        "against the server's fingerprint)",
                        what, detail, host_port(), known_hosts.string(), known_hosts_name(), where.port, where.host)));
                throw StoreUnavailable(say(fmt::format("{}: {}", what, detail)));
            default:
                throw StoreUnavailable(say(fmt::format("{}: {}", what, detail)));
        }
        throw RuntimeError(say(what + ": failed"));  // not reached
    }

    /// The checks of the local files a connection needs, each a clear error, never retried.
    void check_local_files() const {
        if (!key)
            throw StoreUnavailable(say(
                "no SSH key: set [store.sftp] key_file, or pass the private key as the systemd credential sftp-key "
                "(LoadCredential=sftp-key:FILE, bartld(8) CREDENTIALS)"));
        auto readable = [&](const std::filesystem::path& p, const std::string& role) {
            const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                throw StoreUnavailable(say(fmt::format("cannot read {} {}: {}", role, p.string(), std::strerror(errno))));
            ::close(fd);
        };
        readable(*key, fmt::format("the SSH key ({})", key_origin));
        readable(known_hosts, "the known_hosts file ([store.sftp] known_hosts), which holds the host keys bartl "
                              "accepts,");
    }

    // --- requests ---------------------------------------------------------------------------

    CURL* take() {
        {
            std::lock_guard lock(mu);
            if (!idle.empty()) {
                CURL* h = idle.back();
                idle.pop_back();
                return h;
            }
        }
        curl_init_once();
        CURL* h = curl_easy_init();
        if (!h) throw RuntimeError(say("cannot allocate a curl handle"));
        return h;
    }
    void give(CURL* h, bool reusable) {
        if (reusable) {
            std::lock_guard lock(mu);
            if (idle.size() < kPoolSize) {
                idle.push_back(h);
                return;
            }
        }
        curl_easy_cleanup(h);
    }

    /// Runs one request on a kept connection (or a new one). `ctx`'s deadline bounds it
    /// (small requests: also call_timeout); its cancellation stops it.
    Outcome perform(const Context& ctx, const Request& r) {
        check_local_files();
        ctx.cancel.check(say("request"));
        Outcome o;
        Watch watch;
        watch.ctx = &ctx;
        watch.stop = r.stop;
        if (r.stream) watch.stall = call_timeout;
        CURL* h = take();
        curl_easy_reset(h);
        char errbuf[CURL_ERROR_SIZE] = {};
        struct Slist {
            curl_slist* p = nullptr;
            ~Slist() { curl_slist_free_all(p); }
        } quote;
        for (const auto& q : r.quote) quote.p = curl_slist_append(quote.p, q.c_str());
        struct Io {
            const Request* r;
            Watch* watch;
            Outcome* o;
        } io{&r, &watch, &o};
        auto set = [&](CURLoption opt, auto value) {
            const CURLcode rc = curl_easy_setopt(h, opt, value);
            if (rc != CURLE_OK) {
                curl_easy_cleanup(h);
                throw RuntimeError(say(fmt::format("cannot set curl option {}: {}", static_cast<int>(opt),
                                                   curl_easy_strerror(rc))));
            }
        };
        const std::string url = base + url_path(r.path);
        set(CURLOPT_URL, url.c_str());
        set(CURLOPT_PROTOCOLS_STR, "sftp");
        set(CURLOPT_USERNAME, user.c_str());
        set(CURLOPT_SSH_AUTH_TYPES, static_cast<long>(CURLSSH_AUTH_PUBLICKEY));
        set(CURLOPT_SSH_PRIVATE_KEYFILE, key->c_str());
        set(CURLOPT_SSH_PUBLIC_KEYFILE, "");  // libssh2 derives it from the private key
        set(CURLOPT_SSH_KNOWNHOSTS, known_hosts.c_str());
        curl_sshkeycallback keycheck = [](CURL*, const curl_khkey*, const curl_khkey*, curl_khmatch match,
                                          void* p) -> int {
            // Only a key known_hosts holds for this host: never an unknown or changed one, and
            // the file is never written.
            *static_cast<int*>(p) = match;
            return match == CURLKHMATCH_OK ? CURLKHSTAT_FINE : CURLKHSTAT_REJECT;
        };
        set(CURLOPT_SSH_KEYFUNCTION, keycheck);
        set(CURLOPT_SSH_KEYDATA, static_cast<void*>(&o.host_key));
        set(CURLOPT_NOSIGNAL, 1L);
        set(CURLOPT_TCP_KEEPALIVE, 1L);
        set(CURLOPT_ERRORBUFFER, errbuf);
        set(CURLOPT_NEW_FILE_PERMS, 0600L);  // backups hold the application's data and secrets
        set(CURLOPT_NEW_DIRECTORY_PERMS, 0700L);
        set(CURLOPT_NOPROGRESS, 0L);
        curl_xferinfo_callback progress = &Watch::callback;
        set(CURLOPT_XFERINFOFUNCTION, progress);
        set(CURLOPT_XFERINFODATA, static_cast<void*>(&watch));
        const auto connect = std::min<std::chrono::steady_clock::duration>(call_timeout, ctx.deadline.remaining());
        const long connect_ms = std::max<long>(
            1, static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(connect).count()));
        set(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
        if (!r.stream || !ctx.deadline.never()) {
            const auto total = r.stream ? ctx.deadline.remaining()
                                        : std::min<std::chrono::steady_clock::duration>(call_timeout,
                                                                                        ctx.deadline.remaining());
            set(CURLOPT_TIMEOUT_MS,
                std::max<long>(1, static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(total).count())));
        }
        if (r.filetime) set(CURLOPT_FILETIME, 1L);
        if (r.nobody) set(CURLOPT_NOBODY, 1L);
        if (quote.p) set(CURLOPT_QUOTE, quote.p);
        if (r.resume_from > 0) set(CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(r.resume_from));
        curl_write_callback writer = [](char* p, size_t size, size_t n, void* u) -> size_t {
            auto& io = *static_cast<Io*>(u);
            if (!io.r->write) return size * n;  // nothing expected: discard
            try {
                const bool more = io.r->write(p, size * n);
                io.watch->touch();
                return more ? size * n : 0;
            } catch (...) {
                io.o->callback_error = std::current_exception();
                return 0;
            }
        };
        set(CURLOPT_WRITEFUNCTION, writer);
        set(CURLOPT_WRITEDATA, static_cast<void*>(&io));
        set(CURLOPT_BUFFERSIZE, kCurlBuffer);
        if (r.upload) {
            set(CURLOPT_UPLOAD, 1L);
            set(CURLOPT_UPLOAD_BUFFERSIZE, kCurlUploadBuffer);
            curl_read_callback reader = [](char* p, size_t size, size_t n, void* u) -> size_t {
                auto& io = *static_cast<Io*>(u);
                try {
                    const std::size_t got = io.r->read(p, size * n);
                    io.watch->touch();
                    return got;
                } catch (...) {
                    io.o->callback_error = std::current_exception();
                    return CURL_READFUNC_ABORT;
                }
            };
            set(CURLOPT_READFUNCTION, reader);
            set(CURLOPT_READDATA, static_cast<void*>(&io));
        }
        o.rc = curl_easy_perform(h);
        o.error = errbuf;
        o.why = o.rc == CURLE_ABORTED_BY_CALLBACK ? watch.why : Watch::Why::none;
        curl_off_t ft = -1, cl = -1;
        if (curl_easy_getinfo(h, CURLINFO_FILETIME_T, &ft) == CURLE_OK) o.filetime = ft;
        if (curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK) o.size = cl;
        // The server answered: the connection is still good. After a transfer error or an
        // abort it may not be in step any more, so it is dropped.
        const bool answered = o.rc == CURLE_OK || o.rc == CURLE_QUOTE_ERROR || o.rc == CURLE_REMOTE_FILE_NOT_FOUND ||
                              o.rc == CURLE_REMOTE_ACCESS_DENIED;
        give(h, answered);
        return o;
    }

    /// Runs `attempt` in the one retry loop, each try bounded by call_timeout.
    void retried(const Context& ctx, const std::string& what, const std::function<void(const Context&)>& attempt) {
        with_retries(
            ctx, policy, say(what), [&] { attempt(ctx.with_timeout(call_timeout)); },
            [&](unsigned n, const std::string& error) {
                // Debug, as on S3: the fence watch looks every fence_check, and at info a
                // stopped server was a line per retry for the whole outage; what is left
                // after retry_for is said once, by the caller.
                log::debug(fmt::format("{} (try {} failed; trying again)", error, n));
            });
    }

    /// A small request, retried; returns its outcome for the caller to read, having thrown
    /// for every failure but those `accept` takes.
    Outcome request(const Context& ctx, const std::string& what, Request r, bool writing,
                    const std::function<bool(const Outcome&)>& accept = {}) {
        Outcome out;
        retried(ctx, what, [&](const Context& call) {
            out = perform(call, r);
            if (!out.ok() && !(accept && accept(out))) fail(call, out, what, writing);
        });
        return out;
    }

    /// The modification time of `name` (seconds since the epoch) and its size; std::nullopt
    /// when it does not exist. `name` ending in '/' asks for a directory.
    std::optional<std::pair<std::int64_t, std::int64_t>> stat(const Context& ctx, const std::string& name) {
        Request r;
        r.path = name;
        r.nobody = true;
        r.filetime = true;
        const auto o = request(ctx, "checking " + (name.empty() ? dir_text() : name), r, false,
                               [](const Outcome& x) { return x.rc == CURLE_REMOTE_FILE_NOT_FOUND; });
        if (!o.ok() || o.filetime < 0) return std::nullopt;
        return std::make_pair(o.filetime, o.size);
    }

    bool dir_exists(const Context& ctx) { return stat(ctx, "").has_value(); }

    /// Quote commands, then a stat of `then_stat`. Throws as fail() for a failed command
    /// unless `accept` takes it.
    Outcome commands(const Context& ctx, const std::string& what, std::vector<std::string> quote,
                     const std::string& then_stat, const std::function<bool(const Outcome&)>& accept = {}) {
        Request r;
        r.path = then_stat;
        r.nobody = true;
        r.filetime = true;
        r.quote = std::move(quote);
        return request(ctx, what, r, true, accept);
    }

    /// Uploads `data` whole to `name` (a temporary name), retried from the start.
    void upload(const Context& ctx, const std::string& name, const std::string& data, const std::string& what) {
        Request r;
        r.path = name;
        r.upload = true;
        std::size_t pos = 0;
        r.read = [&](char* p, std::size_t n) {
            const std::size_t take = std::min(n, data.size() - pos);
            std::memcpy(p, data.data() + pos, take);
            pos += take;
            return take;
        };
        retried(ctx, what, [&](const Context& call) {
            pos = 0;
            const auto o = perform(call, r);
            if (!o.ok()) fail(call, o, what, true);
        });
    }

    /// Removes `name`; true when it was there. Throws when the directory is missing.
    bool rm(const Context& ctx, const std::string& name) {
        const auto o = commands(ctx, "removing " + name, {"rm " + quoted(remote(name))}, "",
                                [](const Outcome& x) { return x.quote_failed_with("No such file"); });
        if (o.ok()) return true;
        if (!dir_exists(ctx)) missing_dir();
        return false;
    }

    /// Every entry of the directory, hidden ones too, with UTC modification times.
    struct Entry {
        SftpListEntry e;
        std::chrono::system_clock::time_point modified;
    };
    /// `quote`: commands the same request runs before it lists (the removals of remove_many()).
    std::vector<Entry> read_dir(const Context& ctx, std::vector<std::string> quote = {}) {
        std::string body;
        Request r;
        r.path = "";
        r.filetime = true;
        r.quote = std::move(quote);
        r.write = [&](const char* p, std::size_t n) {
            body.append(p, n);
            return true;
        };
        Outcome o;
        retried(ctx, "listing " + dir_text(), [&](const Context& call) {
            body.clear();
            o = perform(call, r);
            if (!o.ok()) fail(call, o, "listing " + dir_text(), false);
        });
        const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
        std::vector<SftpListEntry> entries;
        std::size_t start = 0;
        while (start < body.size()) {
            auto end = body.find('\n', start);
            if (end == std::string::npos) end = body.size();
            const std::string_view line(body.data() + start, end - start);
            start = end + 1;
            if (line.empty() || line == "\r") continue;
            auto e = parse_sftp_long_entry(line, now);
            if (!e)
                throw StoreUnavailable(say(fmt::format("the server's listing of {} has a line bartl cannot read: "
                                                       "\"{}\" (expected ls -l format, as OpenSSH's sftp-server "
                                                       "writes it)",
                                                       dir_text(), std::string(line))));
            entries.push_back(std::move(*e));
        }
        // The listed times are the server's local time; "." (the directory itself) tells the
        // offset, against the exact time the same request read. Without it: UTC.
        std::int64_t offset = 0;
        for (const auto& e : entries)
            if (e.name == "." && e.clock_shown && o.filetime >= 0) offset = sftp_utc_offset(e.listed_time, o.filetime);
        std::vector<Entry> out;
        for (auto& e : entries) {
            if (e.name == "." || e.name == "..") continue;
            const auto t = std::chrono::system_clock::from_time_t(static_cast<time_t>(e.listed_time - offset));
            out.push_back(Entry{std::move(e), t});
        }
        return out;
    }

    // --- the lock of conditional writes -----------------------------------------------------

    /// Puts back objects a replacement moved aside and never replaced (its writer died between
    /// the two renames), and removes other leftovers of replacements. Called by whoever breaks
    /// a stale lock, before anyone can take it again.
    void repair_replacements(const Context& ctx) {
        const auto entries = read_dir(ctx);
        std::set<std::string> names;
        for (const auto& e : entries) names.insert(e.e.name);
        for (const auto& e : entries) {
            const auto& n = e.e.name;
            const auto at = n.find(".old-");
            if (n.empty() || n.front() != '.' || at == std::string::npos || e.e.type != '-') continue;
            const std::string object = n.substr(1, at - 1);
            if (!valid_object_name(object)) continue;
            const auto no_such = [](const Outcome& x) { return x.quote_failed_with("No such file"); };
            if (!names.count(object)) {
                const auto o = commands(ctx, "putting back " + object,
                                        {"rename " + quoted(remote(n)) + " " + quoted(remote(object))}, object, no_such);
                if (o.ok()) {
                    log::warn(say(fmt::format("{} was moved aside by a writer that died replacing it: put back", object)));
                    names.insert(object);
                }
            } else {
                commands(ctx, "removing " + n, {"rm " + quoted(remote(n))}, "", no_such);
            }
        }
    }

    /// Takes the lock; `reference` is a file this call uploaded just now, whose time tells the
    /// server's clock. Waits while another writer holds it; breaks it when stale.
    void lock(const Context& ctx, const std::string& reference) {
        const std::string what = "locking " + dir_text() + " for a conditional write";
        const auto waiting_since = std::chrono::steady_clock::now();
        std::optional<std::int64_t> server_then;
        auto server_then_at = waiting_since;
        static thread_local std::mt19937_64 rng{std::random_device{}()};
        int vanished = 0;
        for (unsigned round = 0;; ++round) {
            const auto o = commands(ctx, what, {"mkdir " + quoted(remote(kLockDir))}, "", [](const Outcome& x) {
                return x.rc == CURLE_QUOTE_ERROR && x.error.find("Permission denied") == std::string::npos;
            });
            if (o.ok()) return;
            if (o.quote_failed_with("No such file")) missing_dir();
            const auto held = stat(ctx, std::string(kLockDir) + "/");
            if (!held) {
                // Refused, yet not there: either released just now, or mkdir fails for
                // another reason (a read-only filesystem answers "Operation failed").
                if (++vanished >= 3) throw RuntimeError(say(fmt::format("{}: {}", what, o.text())));
                continue;
            }
            vanished = 0;
            if (!server_then) {
                const auto ref = stat(ctx, reference);
                if (!ref) throw RuntimeError(say(what + ": the upload " + reference + " went missing"));
                server_then = ref->first;
                server_then_at = std::chrono::steady_clock::now();
            }
            const auto server_now =
                *server_then + std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                                                server_then_at)
                                   .count();
            const auto age = server_now - held->first;
            if (age > kStaleLock.count()) {
                log::warn(say(fmt::format("breaking the lock {} taken {} s ago by a writer that never released it "
                                          "(it died, or lost its connection); bartl(7) Fencing",
                                          kLockDir, age)));
                repair_replacements(ctx);
                commands(ctx, "breaking the lock", {"rmdir " + quoted(remote(kLockDir))}, "",
                         [](const Outcome& x) { return x.quote_failed_with("No such file"); });
                continue;
            }
            if (std::chrono::steady_clock::now() - waiting_since > kStaleLock + kLockHold)
                throw StoreUnavailable(say(fmt::format("{}: another writer holds {} (taken {} s ago)", what, kLockDir, age)));
            const auto cap = std::min<long>(1000, 50L << std::min(round, 4u));
            pause_for(ctx, std::chrono::milliseconds(std::uniform_int_distribution<long>(cap / 2, cap)(rng)), say(what));
        }
    }

    void unlock(const Context& ctx) {
        commands(ctx, "releasing the lock", {"rmdir " + quoted(remote(kLockDir))}, "",
                 [](const Outcome& x) { return x.quote_failed_with("No such file"); });
    }

    /// Waits while a conditional write holds the lock (a reader that found an object missing
    /// may have looked between the two renames of its replacement), kReaderWait at most: a
    /// lock that stays longer was left by a writer that died.
    void wait_unlocked(const Context& ctx) {
        const auto until = std::chrono::steady_clock::now() + kReaderWait;
        while (stat(ctx, std::string(kLockDir) + "/") && std::chrono::steady_clock::now() < until)
            pause_for(ctx, std::chrono::milliseconds(50), say("waiting for a conditional write"));
    }

    /// Renames temporary `tmp` to `name` if `name` does not exist (SFTP version 3's rename
    /// never replaces: OpenSSH links the new name, then unlinks the old); returns the object's
    /// time, or std::nullopt when `name` exists.
    std::optional<std::int64_t> rename_new(const Context& ctx, const std::string& tmp, const std::string& name) {
        const std::string what = "publishing " + name;
        const auto o = commands(ctx, what, {"rename " + quoted(remote(tmp)) + " " + quoted(remote(name))}, name,
                                [](const Outcome& x) { return refused(x) || x.quote_failed_with("No such file"); });
        if (o.ok()) return o.filetime;
        if (o.quote_failed_with("No such file")) {
            // A try whose answer was lost may have renamed it (the temporary name is this
            // process's own).
            if (!stat(ctx, tmp)) {
                if (const auto st = stat(ctx, name)) return st->first;
                if (!dir_exists(ctx)) missing_dir();
            }
        } else if (stat(ctx, name)) {
            return std::nullopt;
        }
        throw RuntimeError(say(fmt::format("{}: {}", what, o.text())));
    }

    /// The server refused a command on an existing name: OpenSSH says "Operation failed",
    /// servers of SFTP version 5 and later "File already exists".
    static bool refused(const Outcome& o) {
        return o.quote_failed_with("Operation failed") || o.quote_failed_with("File already exists");
    }

    /// Replaces `name` by `tmp` (under the lock): `name` moves aside, `tmp` takes its place, the
    /// old one goes, in one request; a retry first looks how far the last try got. The new
    /// object's time is later than the old one's (moved on a second if need be), so its etag
    /// differs even when its content does not. Returns that time. Sets `broken` when it fails
    /// with `name` moved aside and not put back (the lock then stays, so that whoever breaks it
    /// repairs; readers wait for it).
    std::int64_t replace(const Context& ctx, const std::string& tmp, const std::string& name, bool& broken) {
        const std::string aside = aside_name(name);
        std::vector<std::string> move_in;
        const auto old = stat(ctx, name), fresh = stat(ctx, tmp);
        if (old && fresh && fresh->first <= old->first) {
            const std::time_t later = static_cast<std::time_t>(old->first + 1);
            std::tm tm{};
            ::gmtime_r(&later, &tm);
            move_in.push_back(fmt::format("mtime \"{:%a, %d %b %Y %H:%M:%S} GMT\" {}", tm, quoted(remote(tmp))));
        }
        move_in.push_back("rename " + quoted(remote(tmp)) + " " + quoted(remote(name)));
        const std::string move_aside = "rename " + quoted(remote(name)) + " " + quoted(remote(aside));
        const std::string drop = "rm " + quoted(remote(aside));
        auto join = [](std::vector<std::string> a, const std::vector<std::string>& b) {
            a.insert(a.end(), b.begin(), b.end());
            return a;
        };
        bool first = true;
        std::int64_t when = -1;
        try {
            retried(ctx, "replacing " + name, [&](const Context& call) {
                std::vector<std::string> q = join(join({move_aside}, move_in), {drop});
                if (!first) {
                    const bool have_tmp = stat(call, tmp).has_value(), have_name = stat(call, name).has_value(),
                               have_aside = stat(call, aside).has_value();
                    if (!have_tmp && have_name)
                        q = have_aside ? std::vector<std::string>{drop} : std::vector<std::string>{};
                    else if (have_tmp && !have_name && have_aside)
                        q = join(move_in, {drop});
                    else if (!(have_tmp && have_name && !have_aside))
                        throw RuntimeError(say(fmt::format("replacing {}: {} is {}, {} is {}, {} is {}", name, tmp,
                                                           have_tmp ? "there" : "missing", name,
                                                           have_name ? "there" : "missing", aside,
                                                           have_aside ? "there" : "missing")));
                }
                first = false;
                Request r;
                r.path = name;
                r.nobody = true;
                r.filetime = true;
                r.quote = q;
                const auto x = perform(call, r);
                if (!x.ok()) fail(call, x, "replacing " + name, true);
                when = x.filetime;
            });
            return when;
        } catch (...) {
            try {
                const Context back = cleanup(ctx);
                if (!stat(back, name) && stat(back, aside))
                    commands(back, "putting back " + name, {"rename " + quoted(remote(aside)) + " " +
                                                            quoted(remote(name))}, name);
            } catch (const std::exception& e) {
                broken = true;
                log::warn(say(fmt::format("{} stays moved aside as {} until the lock {} is broken: {}", name, aside,
                                          kLockDir, e.what())));
            }
            throw;
        }
    }

    /// Makes temporary `tmp` the object `name` if `cond` holds: a new name by one rename; an
    /// existing one, or any conditional write, under the lock. Returns the object's time.
    /// Throws PreconditionFailed. Leaves `tmp` to the caller when it fails.
    std::int64_t publish(const Context& ctx, const std::string& tmp, const std::string& name,
                         const WriteCondition& cond) {
        if (cond.kind == WriteCondition::Kind::none)
            if (const auto when = rename_new(ctx, tmp, name)) return *when;
        lock(ctx, tmp);
        bool broken = false;
        try {
            // The work under the lock ends well before anyone may break the lock as stale.
            const Context held = ctx.with_timeout(kLockHold);
            if (cond.kind == WriteCondition::Kind::if_match) {
                const auto cur = fetch(held, name, kMaxConditional);
                if (!cur) throw PreconditionFailed(say(name + " was removed since it was read"));
                if (etag_of(cur->second, cur->first) != cond.etag)
                    throw PreconditionFailed(say(name + " was replaced since it was read"));
            }
            std::int64_t when = -1;
            if (const auto t = rename_new(held, tmp, name))
                when = *t;
            else if (cond.kind == WriteCondition::Kind::if_absent)
                throw PreconditionFailed(say(name + " already exists"));
            else
                when = replace(held, tmp, name, broken);
            unlock(held);
            return when;
        } catch (...) {
            if (!broken) {
                try {
                    unlock(cleanup(ctx));
                } catch (const std::exception& e) {
                    log::warn(say(fmt::format("cannot release the lock {} (broken when stale): {}", kLockDir, e.what())));
                }
            }
            throw;
        }
    }

    /// A small object's content and time; std::nullopt when it does not exist. Throws
    /// RuntimeError when it is larger than `max_bytes`.
    std::optional<std::pair<std::string, std::int64_t>> fetch(const Context& ctx, const std::string& name,
                                                              std::size_t max_bytes) {
        std::string data;
        bool too_big = false;
        Request r;
        r.path = name;
        r.filetime = true;
        r.write = [&](const char* p, std::size_t n) {
            if (data.size() + n > max_bytes) {
                too_big = true;
                return false;
            }
            data.append(p, n);
            return true;
        };
        Outcome o;
        retried(ctx, "reading " + name, [&](const Context& call) {
            data.clear();
            too_big = false;
            o = perform(call, r);
            if (too_big) throw RuntimeError(say(fmt::format("{} is larger than the {} bytes expected", name, max_bytes)));
            if (!o.ok() && o.rc != CURLE_REMOTE_FILE_NOT_FOUND) fail(call, o, "reading " + name, false);
        });
        if (!o.ok()) return std::nullopt;
        return std::make_pair(std::move(data), o.filetime);
    }
};

namespace {

using Shared = SftpStore::Shared;

/// An upload: curl's read callback on a thread of its own pops what write() pushed.
class SftpWriter : public ObjectWriter {
public:
    SftpWriter(std::shared_ptr<Shared> s, const Context& ctx, std::string name)
        : s_(std::move(s)), ctx_(ctx), name_(std::move(name)), tmp_(upload_temp_name(name_)), pipe_(kChunks, kChunkBytes) {
        thread_ = std::thread([this] { run(); });
        // Connected, authenticated and the temporary file open (curl asks for data only then),
        // or failed: an unreachable or read-only store fails create() itself.
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return started_ || finished_; });
        if (!started_ && error_) {
            lock.unlock();
            thread_.join();
            std::rethrow_exception(error_);
        }
    }
    ~SftpWriter() override { stop(); }
    SftpWriter(const SftpWriter&) = delete;
    SftpWriter& operator=(const SftpWriter&) = delete;

    void write(const void* data, std::size_t n) override {
        if (committed_ || aborted_)
            throw RuntimeError(s_->say(fmt::format("write to {} after commit or abort", name_)));
        if (!pipe_.push(data, n)) rethrow_failure();
        written_ += n;
    }

    void commit(const Context& ctx) override {
        if (committed_ || aborted_ || closed_)
            throw RuntimeError(s_->say(fmt::format("{} committed twice or after abort", name_)));
        ctx.check(s_->say("commit of " + name_));
        closed_ = true;
        pipe_.close();
        thread_.join();
        if (error_) std::rethrow_exception(error_);
        s_->publish(ctx, tmp_, name_, {});
        committed_ = true;
    }

    void abort(const Context& ctx) override {
        if (committed_ || aborted_) return;
        aborted_ = true;
        stop();
        s_->rm(ctx, tmp_);
    }

private:
    void run() {
        bool started = false;
        try {
            Request r;
            r.path = tmp_;
            r.upload = true;
            r.stream = true;
            r.stop = &stopping_;
            std::span<const char> chunk;
            std::size_t at = 0;
            bool done = false;
            r.read = [&](char* p, std::size_t n) -> std::size_t {
                if (!started) {
                    started = true;
                    std::lock_guard lock(mu_);
                    started_ = true;
                    cv_.notify_all();
                }
                // curl's whole buffer, not one chunk: libssh2 keeps in flight only what one
                // call hands it, and OpenSSH's throughput needs about 2 MiB of it.
                std::size_t filled = 0;
                while (filled < n) {
                    if (at == chunk.size()) {
                        if (done) break;
                        chunk = pipe_.pop();  // throws PipeCancelled when the writer stops
                        at = 0;
                        if (chunk.empty()) {  // commit(): the end
                            done = true;
                            break;
                        }
                    }
                    const std::size_t take = std::min(n - filled, chunk.size() - at);
                    std::memcpy(p + filled, chunk.data() + at, take);
                    at += take;
                    filled += take;
                }
                return filled;
            };
            const std::string what = "uploading " + name_;
            with_retries(ctx_, s_->policy, s_->say(what), [&] {
                const auto o = s_->perform(ctx_, r);
                if (o.ok()) return;
                try {
                    s_->fail(ctx_, o, what, true);
                } catch (const TransientStoreError& e) {
                    // Bytes handed to curl cannot be sent again: once the upload has begun,
                    // a lost connection fails it (the next backup starts over).
                    if (started) throw StoreUnavailable(fmt::format("{} (after {} bytes)", e.what(), written_.load()));
                    throw;
                }
            });
        } catch (const PipeCancelled&) {
            set_error(std::make_exception_ptr(RuntimeError(s_->say("upload of " + name_ + " stopped"))));
        } catch (...) {
            set_error(std::current_exception());
        }
        std::lock_guard lock(mu_);
        finished_ = true;
        cv_.notify_all();
    }

    void set_error(std::exception_ptr e) {
        {
            std::lock_guard lock(mu_);
            error_ = std::move(e);
        }
        pipe_.cancel();  // a blocked write() returns and reports error_
    }

    [[noreturn]] void rethrow_failure() {
        std::exception_ptr e;
        {
            std::lock_guard lock(mu_);
            e = error_;
        }
        if (e) std::rethrow_exception(e);
        throw RuntimeError(s_->say("upload of " + name_ + " stopped"));
    }

    /// Ends the transfer thread (local only: the temporary stays for abort() or the cleanup).
    void stop() {
        stopping_ = true;
        pipe_.cancel();
        if (thread_.joinable()) thread_.join();
    }

    std::shared_ptr<Shared> s_;
    Context ctx_;
    std::string name_;
    std::string tmp_;
    ChunkPipe pipe_;
    std::thread thread_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> written_{0};
    std::mutex mu_;
    std::condition_variable cv_;
    bool started_ = false;
    bool finished_ = false;
    std::exception_ptr error_;
    bool closed_ = false;
    bool committed_ = false;
    bool aborted_ = false;
};

/// A download: curl's write callback on a thread of its own pushes what read() pops. A
/// dropped connection resumes from the byte it got to.
class SftpReader : public ByteSource {
public:
    SftpReader(std::shared_ptr<Shared> s, const Context& ctx, std::string name, std::uint64_t offset,
               std::uint64_t size)
        : s_(std::move(s)), ctx_(ctx), name_(std::move(name)), pos_(offset), size_(size), pipe_(kChunks, kChunkBytes) {
        thread_ = std::thread([this] { run(); });
    }
    ~SftpReader() override {
        stopping_ = true;
        pipe_.cancel();
        thread_.join();
    }
    SftpReader(const SftpReader&) = delete;
    SftpReader& operator=(const SftpReader&) = delete;

    std::size_t read(void* data, std::size_t n) override {
        while (at_ == chunk_.size()) {
            if (ended_) return 0;
            chunk_ = pipe_.pop();
            at_ = 0;
            if (chunk_.empty()) {
                ended_ = true;
                return 0;
            }
        }
        const std::size_t take = std::min(n, chunk_.size() - at_);
        std::memcpy(data, chunk_.data() + at_, take);
        at_ += take;
        return take;
    }

private:
    void run() {
        try {
            const std::string what = "reading " + name_;
            while (pos_ < size_) {
                bool moved = false;
                Request r;
                r.path = name_;
                r.stream = true;
                r.stop = &stopping_;
                r.write = [&](const char* p, std::size_t n) {
                    if (!pipe_.push(p, n)) return false;
                    pos_ += n;
                    moved = true;
                    return true;
                };
                // A fresh retry budget after every try that moved data: the budget bounds
                // the time spent failing, not a long download.
                with_retries(
                    ctx_, s_->policy, s_->say(what),
                    [&] {
                        moved = false;
                        r.resume_from = pos_;
                        const auto o = s_->perform(ctx_, r);
                        if (o.ok() || pipe_.cancelled()) return;
                        try {
                            s_->fail(ctx_, o, what, false);
                        } catch (const TransientStoreError& e) {
                            if (moved) {
                                log::info(fmt::format("{} at byte {}; resuming", e.what(), pos_));
                                return;
                            }
                            throw;
                        }
                    },
                    [&](unsigned n, const std::string& error) {
                        log::info(fmt::format("{} (try {} failed; resuming at byte {})", error, n, pos_));
                    });
                if (pipe_.cancelled()) return;
                if (!moved && pos_ < size_)
                    throw RuntimeError(s_->say(fmt::format("{}: the object ended at byte {}, not {} as it was when "
                                                           "opened",
                                                           name_, pos_, size_)));
            }
            pipe_.close();
        } catch (...) {
            pipe_.fail(std::current_exception());
        }
    }

    std::shared_ptr<Shared> s_;
    Context ctx_;
    std::string name_;
    std::uint64_t pos_;  // the next byte to fetch
    const std::uint64_t size_;
    ChunkPipe pipe_;
    std::thread thread_;
    std::atomic<bool> stopping_{false};
    std::span<const char> chunk_;
    std::size_t at_ = 0;
    bool ended_ = false;
};

}  // namespace

SftpStore::SftpStore(std::string url, SftpLocation where, const StoreOptions& options)
    : shared_(std::make_shared<Shared>()) {
    auto& s = *shared_;
    s.url = std::move(url);
    s.where = std::move(where);
    s.user = s.where.user;
    if (s.user.empty()) {
        const passwd* pw = ::getpwuid(::geteuid());
        if (pw == nullptr || pw->pw_name == nullptr || !*pw->pw_name)
            throw ConfigError(fmt::format("store URL \"{}\": no user named, and the user bartld runs as (UID {}) has "
                                          "no name: write sftp://USER@HOST/PATH",
                                          s.url, ::geteuid()));
        s.user = pw->pw_name;
    }
    s.base = "sftp://" + s.host_port();
    const auto& sftp = options.settings.sftp;
    if (sftp.key_file) {
        s.key = *sftp.key_file;
        s.key_origin = "[store.sftp] key_file";
    } else if (!options.credentials_dir.empty()) {
        s.key = options.credentials_dir / "sftp-key";
        s.key_origin = "the systemd credential sftp-key";
    }
    s.known_hosts = sftp.known_hosts;
    s.call_timeout = options.settings.call_timeout;
    s.policy.budget = options.settings.retry_for;
}

SftpStore::~SftpStore() = default;

std::string SftpStore::url() const { return shared_->url; }

std::vector<ObjectInfo> SftpStore::list(const Context& ctx, const std::string& prefix) {
    ctx.check(shared_->say("listing"));
    std::vector<ObjectInfo> out;
    for (auto& e : shared_->read_dir(ctx)) {
        // Regular files only: not hidden (uploads in progress, the lock), not symbolic links.
        if (e.e.type != '-' || e.e.name.empty() || e.e.name.front() == '.' || !starts_with(e.e.name, prefix)) continue;
        out.push_back(ObjectInfo{std::move(e.e.name), e.e.size, e.modified});
    }
    std::sort(out.begin(), out.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
    return out;
}

std::unique_ptr<ByteSource> SftpStore::open(const Context& ctx, const std::string& name, std::uint64_t offset) {
    auto& s = *shared_;
    ctx.check(s.say("opening " + name));
    if (!valid_object_name(name)) throw NotFound(s.say(name + " not found (not a valid object name)"));
    const auto st = s.stat(ctx, name);
    if (!st) {
        if (!s.dir_exists(ctx)) s.missing_dir();
        throw NotFound(s.say(name + " not found"));
    }
    if (s.stat(ctx, name + "/")) throw NotFound(s.say(name + " is a directory, not an object"));
    const auto size = static_cast<std::uint64_t>(std::max<std::int64_t>(st->second, 0));
    return std::make_unique<SftpReader>(shared_, ctx, name, std::min(offset, size), size);
}

std::optional<SmallObject> SftpStore::get(const Context& ctx, const std::string& name, std::size_t max_bytes) {
    auto& s = *shared_;
    ctx.check(s.say("reading " + name));
    if (!valid_object_name(name)) throw RuntimeError(s.say(fmt::format("invalid object name \"{}\"", name)));
    auto got = s.fetch(ctx, name, max_bytes);
    if (!got) {
        // Perhaps read between the two renames of a replacement, which happen under the lock:
        // once the lock is gone (or was gone when looked at), the replacement is in place.
        if (s.stat(ctx, std::string(kLockDir) + "/")) s.wait_unlocked(ctx);
        got = s.fetch(ctx, name, max_bytes);
    }
    if (!got) {
        if (!s.dir_exists(ctx)) s.missing_dir();
        return std::nullopt;
    }
    SmallObject obj;
    obj.etag = etag_of(got->second, got->first);
    obj.data = std::move(got->first);
    return obj;
}

std::string SftpStore::put(const Context& ctx, const std::string& name, const std::string& data,
                           const WriteCondition& cond) {
    auto& s = *shared_;
    ctx.check(s.say("writing " + name));
    if (!valid_object_name(name)) throw RuntimeError(s.say(fmt::format("invalid object name \"{}\"", name)));
    const std::string tmp = upload_temp_name(name);
    s.upload(ctx, tmp, data, "writing " + name);
    try {
        return etag_of(s.publish(ctx, tmp, name, cond), data);
    } catch (...) {
        // Not a destructor: a call the caller waits for. If it fails too, the temporary is
        // removed later (remove_abandoned_uploads()).
        try {
            s.rm(s.cleanup(ctx), tmp);
        } catch (const std::exception& e) {
            log::warn(s.say(fmt::format("cannot remove {} after a failed write: {}", tmp, e.what())));
        }
        throw;
    }
}

std::unique_ptr<ObjectWriter> SftpStore::create(const Context& ctx, const std::string& name) {
    ctx.check(shared_->say("writing " + name));
    if (!valid_object_name(name)) throw RuntimeError(shared_->say(fmt::format("invalid object name \"{}\"", name)));
    return std::make_unique<SftpWriter>(shared_, ctx, name);
}

void SftpStore::remove(const Context& ctx, const std::string& name) {
    ctx.check(shared_->say("removing " + name));
    if (!valid_object_name(name)) throw RuntimeError(shared_->say(fmt::format("invalid object name \"{}\"", name)));
    shared_->rm(ctx, name);
}

void SftpStore::remove_many(const Context& ctx, const std::vector<std::string>& names) {
    auto& s = *shared_;
    for (const auto& n : names)
        if (!valid_object_name(n)) throw RuntimeError(s.say(fmt::format("invalid object name \"{}\"", n)));
    for (std::size_t at = 0; at < names.size(); at += kRemoveBatch) {
        const std::vector<std::string> batch(names.begin() + at,
                                             names.begin() + std::min(names.size(), at + kRemoveBatch));
        const auto what = batch.size() == 1 ? "removing " + batch.front()
                                            : fmt::format("removing {} objects ({} ...)", batch.size(), batch.front());
        ctx.check(s.say(what));
        // One request: every "rm" in turn on the open SFTP session ("*": a failure does not
        // stop the rest), then a listing that shows which stayed. Missing objects are fine.
        std::vector<std::string> quote;
        for (const auto& n : batch) quote.push_back("*rm " + quoted(s.remote(n)));
        std::set<std::string> listed;
        for (const auto& e : s.read_dir(ctx, std::move(quote))) listed.insert(e.e.name);
        // libcurl does not say which ignored command failed, or why: each that stayed is
        // removed again alone, whose error names it (permission denied: read-only store).
        std::vector<std::string> why;
        bool read_only = false;
        for (const auto& n : batch) {
            if (!listed.count(n)) continue;
            try {
                s.rm(ctx, n);
            } catch (const StoreReadOnly& e) {
                read_only = true;
                why.push_back(e.what());
            } catch (const RuntimeError& e) {
                why.push_back(e.what());
            }
        }
        if (why.empty()) continue;
        std::string text = fmt::format("{}: {} of them stayed: ", what, why.size());
        for (std::size_t i = 0; i < why.size(); ++i) text += (i ? "; " : "") + why[i];
        if (read_only) throw StoreReadOnly(text);
        throw StoreUnavailable(text);
    }
}

unsigned SftpStore::remove_abandoned_uploads(const Context& ctx, const std::string& prefix, std::chrono::seconds age) {
    auto& s = *shared_;
    ctx.check(s.say("removing abandoned uploads"));
    const auto cutoff = std::chrono::system_clock::now() - age;
    unsigned removed = 0;
    for (const auto& e : s.read_dir(ctx)) {
        const auto& n = e.e.name;
        if (e.e.type != '-' || !starts_with(n, "." + prefix) || n.find(".tmp-") == std::string::npos) continue;
        if (!upload_writer_gone(n) && e.modified >= cutoff) continue;  // may be an upload in progress
        if (s.rm(ctx, n)) ++removed;
    }
    return removed;
}

std::string SftpStore::conditional_write_guarantee() const {
    return fmt::format(
        "lock: the directory {} made by SFTP MKDIR, atomic on the server; a lock older than {} minutes is taken "
        "for one left by a writer that died and is broken, so two writers breaking the same stale lock at the "
        "same moment could both write (bartl(7) Fencing)",
        kLockDir, kStaleLock.count() / 60);
}

}  // namespace bartl
