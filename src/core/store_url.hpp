// Parsing store URLs (file://, sftp://), pure: no I/O.
#pragma once

#include <filesystem>
#include <string>

namespace bartl {

/// Parses "file:///abs/dir" (percent-escapes decoded, RFC 8089) into the directory. Throws
/// ConfigError for another scheme, a host part other than "localhost", or a relative/empty
/// path, or the root directory.
std::filesystem::path file_url_path(const std::string& url);

/// Where an sftp:// store lives.
struct SftpLocation {
    std::string user;  ///< "" = the user bartld runs as
    std::string host;  ///< a host name or an address (IPv6 without its brackets)
    unsigned port = 22;
    /// The store directory: absolute ("/srv/backups"), or "~" / "~/DIR" for the login
    /// directory and paths below it. No trailing '/'.
    std::string dir;
};

/// Parses "sftp://[USER@]HOST[:PORT]/PATH" (RFC 3986 authority; percent-escapes decoded;
/// "/~/DIR" is DIR in the login directory, as curl and OpenSSH's sftp(1) read it). Throws
/// ConfigError naming the URL for another scheme, a password in the URL (keys only), a bad
/// port, an empty host, a relative or root path, a query or fragment.
SftpLocation parse_sftp_url(const std::string& url);

}  // namespace bartl
