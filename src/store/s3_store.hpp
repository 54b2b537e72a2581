// The s3:// store: objects in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Garage,
// s3rver), spoken to over HTTP(S) with libcurl and signed with AWS Signature Version 4.
#pragma once

#include <memory>
#include <string>

#include "core/s3_protocol.hpp"
#include "store/store.hpp"

namespace bartl {

struct S3Core;  // settings, credentials, connections; shared with open readers and writers

/// Store in an S3 bucket under a prefix (store.hpp contract; bartl(7) STORES). Object NAME is
/// key PREFIX/NAME. Small objects are one PUT; create() streams a multipart upload
/// (CreateMultipartUpload at the first full part, [store.s3] part_size each, at most
/// parts_in_flight part buffers in memory, the one being filled included), which S3 never
/// lists before CompleteMultipartUpload; abort() sends AbortMultipartUpload, and uploads left
/// by a killed writer are aborted by remove_abandoned_uploads() once older than the age.
/// open() is a streaming GET that resumes with a Range request (If-Match on the first answer's
/// ETag) after a dropped connection. Every request goes through with_retries(): timeouts,
/// connection errors, 5xx and 429/SlowDown are retried for [store] retry_for; each request is
/// bounded by [store] call_timeout. Credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
/// AWS_SESSION_TOKEN, else the systemd credential "aws-credentials") are read at the first
/// request, never logged, never put in a URL or a message.
class S3Store : public Store {
public:
    /// Parses `url` ("s3://BUCKET/PREFIX"); throws ConfigError when it is malformed. Does not
    /// contact the store nor read credentials.
    S3Store(std::string url, const StoreOptions& options);
    ~S3Store() override;

    std::string url() const override;
    /// Where the objects are.
    const S3Location& location() const;

    std::vector<ObjectInfo> list(const Context& ctx, const std::string& prefix) override;
    std::unique_ptr<ByteSource> open(const Context& ctx, const std::string& name, std::uint64_t offset = 0) override;
    std::optional<SmallObject> get(const Context& ctx, const std::string& name, std::size_t max_bytes) override;
    /// A conditional put sends If-None-Match: * or If-Match: ETAG (HTTP 412 is
    /// PreconditionFailed), and, for servers that ignore those headers, checks the condition
    /// with a HEAD before and reads the object back after the PUT (see
    /// conditional_write_guarantee()).
    std::string put(const Context& ctx, const std::string& name, const std::string& data,
                    const WriteCondition& cond) override;
    std::unique_ptr<ObjectWriter> create(const Context& ctx, const std::string& name) override;
    void remove(const Context& ctx, const std::string& name) override;
    /// DeleteObjects (quiet), kS3DeleteObjectsMax names per request, with Content-MD5.
    void remove_many(const Context& ctx, const std::vector<std::string>& names) override;
    /// ListMultipartUploads for PREFIX/`prefix`; aborts those initiated more than `age` ago.
    /// A server without ListMultipartUploads (HTTP 501) has nothing to clean: 0.
    unsigned remove_abandoned_uploads(const Context& ctx, const std::string& prefix,
                                      std::chrono::seconds age) override;
    std::string conditional_write_guarantee() const override;

private:
    std::shared_ptr<S3Core> core_;
};

}  // namespace bartl
