#include "store/http.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <mutex>

#include <fmt/format.h>

#include "core/error.hpp"
#include "store/retry.hpp"

namespace bartl {
namespace {

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

/// State one perform() shares with libcurl's callbacks.
struct Transfer {
    const Context* ctx = nullptr;
    const HttpRequest* req = nullptr;
    HttpResponse* resp = nullptr;
    bool headers_done = false;
    bool streaming_body = false;  // a 2xx answer going to on_data
    bool too_long = false;
    std::exception_ptr error;  // thrown by on_data / on_headers
};

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    std::size_t i = 0;
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    return s.substr(i);
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const std::string line(data, size * n);
    if (line.rfind("HTTP/", 0) == 0) {
        // A new answer (after a 100 Continue, or a redirect we do not follow): start over.
        t->resp->headers.clear();
        const auto sp = line.find(' ');
        t->resp->status = sp == std::string::npos ? 0 : std::strtol(line.c_str() + sp + 1, nullptr, 10);
        return size * n;
    }
    if (line == "\r\n" || line == "\n") {
        if (t->resp->status >= 200 && !t->headers_done) {
            t->headers_done = true;
            t->streaming_body = t->req->on_data && t->resp->status / 100 == 2;
            if (t->req->on_headers) {
                try {
                    t->req->on_headers(t->resp->status, t->resp->headers);
                } catch (...) {
                    t->error = std::current_exception();
                    return 0;
                }
            }
        }
        return size * n;
    }
    const auto colon = line.find(':');
    if (colon != std::string::npos) t->resp->headers[lower(line.substr(0, colon))] = trim(line.substr(colon + 1));
    return size * n;
}

size_t on_write(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t len = size * n;
    if (t->streaming_body) {
        try {
            t->req->on_data(data, len);
        } catch (...) {
            t->error = std::current_exception();
            return 0;
        }
        return len;
    }
    if (t->resp->body.size() + len > t->req->max_body) {
        t->too_long = true;
        return 0;
    }
    t->resp->body.append(data, len);
    return len;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(user);
    return t->ctx->cancel.cancelled() || t->ctx->deadline.expired() ? 1 : 0;
}

long clamp_ms(std::chrono::steady_clock::duration d) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    return static_cast<long>(std::clamp<long long>(ms, 1, 24LL * 3600 * 1000));
}

/// Failures a retry cannot mend: the peer's certificate, our CA file, a URL curl refuses.
bool permanent(CURLcode rc) {
    switch (rc) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_NOT_BUILT_IN:
        case CURLE_OUT_OF_MEMORY:
            return true;
        default:
            return false;
    }
}

}  // namespace

HttpClient::HttpClient(HttpClientSettings settings) : settings_(std::move(settings)) {
    global_init();
    curl_ = curl_easy_init();
    if (!curl_) throw RuntimeError("cannot initialise libcurl");
}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

HttpResponse HttpClient::perform(const Context& ctx, const HttpRequest& req, const std::string& what) {
    ctx.cancel.check(what);
    if (ctx.deadline.expired()) throw TransientStoreError("deadline passed");
    CURL* c = static_cast<CURL*>(curl_);
    curl_easy_reset(c);  // keeps the connection cache
    HttpResponse resp;
    Transfer t;
    t.ctx = &ctx;
    t.req = &req;
    t.resp = &resp;
    char errbuf[CURL_ERROR_SIZE] = {};
    curl_slist* headers = nullptr;
    for (const auto& h : req.headers) headers = curl_slist_append(headers, h.c_str());
    struct Free {
        curl_slist* h;
        ~Free() { curl_slist_free_all(h); }
    } free_headers{headers};

    curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (settings_.ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, settings_.ca_file->c_str());
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L * 1024);
    if (!settings_.aws_sigv4.empty()) {
        curl_easy_setopt(c, CURLOPT_AWS_SIGV4, settings_.aws_sigv4.c_str());
        curl_easy_setopt(c, CURLOPT_USERNAME, settings_.user.c_str());
        curl_easy_setopt(c, CURLOPT_PASSWORD, settings_.password.c_str());
    }
    if (req.method == "HEAD") {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (req.method != "GET") {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
    if (req.method == "PUT" || req.method == "POST") {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data() ? req.body.data() : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    }
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    const auto limit = std::min<std::chrono::steady_clock::duration>(req.timeout, ctx.deadline.remaining());
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, clamp_ms(limit));
    if (req.streaming) {
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
                         std::max<long>(1, static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(
                                                                 req.timeout).count())));
        if (!ctx.deadline.never()) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, clamp_ms(ctx.deadline.remaining()));
    } else {
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, clamp_ms(limit));
    }

    const CURLcode rc = curl_easy_perform(c);
    if (t.error) std::rethrow_exception(t.error);
    if (rc == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        resp.status = status;
        return resp;
    }
    ctx.cancel.check(what);
    const std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_ABORTED_BY_CALLBACK || (rc == CURLE_OPERATION_TIMEDOUT && ctx.deadline.expired()))
        throw TransientStoreError("deadline passed");
    if (t.too_long)
        throw RuntimeError(fmt::format("{}: the answer is longer than {} bytes", what, req.max_body));
    if (permanent(rc)) throw StoreUnavailable(fmt::format("{}: {}", what, detail));
    throw TransientStoreError(detail);
}

}  // namespace bartl
