// A small HTTP client over libcurl for the remote stores: one request at a time per client
// (connections are kept and reused between requests), bounded by a timeout and the call's
// Context (a cancelled context or a passed deadline aborts the transfer between chunks), and
// signed with AWS Signature Version 4 by libcurl (CURLOPT_AWS_SIGV4) when asked. TLS peers
// are always verified. Network failures are TransientStoreError (the caller's with_retries()
// decides whether to try again); HTTP error statuses are answers, returned, not thrown.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/cancel.hpp"

namespace bartl {

/// One HTTP request.
struct HttpRequest {
    std::string method = "GET";  ///< GET, HEAD, PUT, POST, DELETE
    std::string url;             ///< complete, already encoded (SigV4 signs it as given)
    std::vector<std::string> headers;  ///< "Name: value"; never "Name:" (curl would sign it unsent)
    std::string_view body;             ///< sent as is with Content-Length; must outlive perform()
    /// Streaming receiver of a successful (2xx) answer's body, in pieces as they arrive; an
    /// exception it throws aborts the transfer and leaves perform(). Without it, or for other
    /// statuses, the body is collected into HttpResponse::body, at most `max_body` bytes.
    std::function<void(const char* data, std::size_t n)> on_data;
    /// Called once the status and headers of the final answer are in, before any body byte.
    std::function<void(long status, const std::map<std::string, std::string>& headers)> on_headers;
    std::size_t max_body = 8u << 20;  ///< bytes; a longer collected body is a RuntimeError
    /// Without a total time limit: a transfer is aborted only when it moves less than one byte
    /// per second for `timeout` (a download of any size); otherwise `timeout` bounds the request.
    bool streaming = false;
    std::chrono::milliseconds timeout{60000};
};

/// The answer to an HttpRequest.
struct HttpResponse {
    long status = 0;
    std::map<std::string, std::string> headers;  ///< names in lower case; the last of repeated ones
    std::string body;                             ///< collected body (see HttpRequest::on_data)
};

/// How a client connects and signs.
struct HttpClientSettings {
    /// CURLOPT_AWS_SIGV4 ("aws:amz:REGION:s3"); "" = unsigned requests.
    std::string aws_sigv4;
    std::string user;      ///< the access key ID when signing
    std::string password;  ///< the secret access key when signing; never logged
    /// CA bundle to verify TLS peers with (CURLOPT_CAINFO); std::nullopt = the system's.
    std::optional<std::filesystem::path> ca_file;
};

/// An HTTP client with one libcurl easy handle. Not thread-safe: one per thread.
class HttpClient {
public:
    explicit HttpClient(HttpClientSettings settings);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    /// Performs `req`. `what` names the request in messages ("store s3://b/p: listing").
    /// Throws StopRequested when `ctx` is cancelled, TransientStoreError for connection
    /// failures, resets, timeouts and a passed `ctx` deadline (its message is the failure
    /// alone: with_retries() names the call), StoreUnavailable "WHAT: ..." for failures no
    /// retry can mend (TLS verification, an unsupported URL), and whatever on_data throws.
    HttpResponse perform(const Context& ctx, const HttpRequest& req, const std::string& what);

private:
    HttpClientSettings settings_;
    void* curl_;  // CURL*
};

}  // namespace bartl
