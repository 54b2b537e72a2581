// Parsing store URLs that name local things (file://), pure: no I/O.
#pragma once

#include <filesystem>
#include <string>

namespace bartl {

/// Parses "file:///abs/dir" (percent-escapes decoded, RFC 8089) into the directory. Throws
/// ConfigError for another scheme, a host part other than "localhost", or a relative/empty
/// path, or the root directory.
std::filesystem::path file_url_path(const std::string& url);

}  // namespace bartl
