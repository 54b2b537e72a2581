// Settings of the remote stores ([store], [store.s3], [store.sftp] of bartl.toml(5)), shared
// by the configuration (which parses them) and the store implementations (which use them).
// Secrets are not here: they come from systemd credentials.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace bartl {

/// [store.s3]: an S3-compatible object store (s3://BUCKET/PREFIX).
struct S3Settings {
    /// The S3 API's base URL ("https://s3.eu-central-1.amazonaws.com", "http://127.0.0.1:4568");
    /// "" = https://s3.REGION.amazonaws.com.
    std::string endpoint;
    std::string region = "us-east-1";  ///< SigV4 signing region
    /// The bucket in the URL path (MinIO, s3rver, most self-hosted servers) instead of the
    /// host name (virtual-hosted style, AWS's default).
    bool path_style = false;
    std::string storage_class;  ///< x-amz-storage-class of uploaded objects; "" = the bucket's default
    std::optional<std::filesystem::path> ca_file;  ///< CA bundle for TLS; default the system's
    std::uint64_t part_size = 16ull << 20;  ///< multipart upload part size, bytes (5 MiB .. 5 GiB)
    unsigned parts_in_flight = 4;           ///< parts uploaded at once (memory: one part_size each)
    /// Section of the AWS-format credentials file (systemd credential "aws-credentials"); ""
    /// = AWS_DEFAULT_PROFILE or AWS_PROFILE from the environment, else "default"
    /// (choose_aws_profile(), core/aws_credentials.hpp).
    std::string profile;
};

/// [store.sftp]: a directory on an SSH server (sftp://[USER@]HOST[:PORT]/PATH).
struct SftpSettings {
    /// The private key; default the systemd credential "sftp-key".
    std::optional<std::filesystem::path> key_file;
    /// Host keys the server must present (OpenSSH known_hosts format); an unknown or changed
    /// key is an error, never accepted.
    std::filesystem::path known_hosts = "/etc/ssh/ssh_known_hosts";
};

/// [store]: how store calls are bounded and retried, and the per-scheme settings.
struct StoreSettings {
    /// Deadline of one store call (a listing page, an upload part, a small GET).
    std::chrono::milliseconds call_timeout{60000};
    /// How long a call may be retried in all (exponential backoff with jitter) before the
    /// store counts as unavailable.
    std::chrono::milliseconds retry_for{300000};
    S3Settings s3;
    SftpSettings sftp;
};

}  // namespace bartl
