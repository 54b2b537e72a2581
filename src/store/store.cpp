// Store URL dispatch.
#include "store/store.hpp"

#include <fmt/format.h>

#include "store/file_store.hpp"
#include "store/s3_store.hpp"
#include "store/sftp_store.hpp"

namespace bartl {

void Store::remove_many(const Context& ctx, const std::vector<std::string>& names) {
    for (const auto& n : names) remove(ctx, n);
}

std::unique_ptr<Store> open_store(const std::string& url, const StoreOptions& options) {
    const auto sep = url.find("://");
    if (sep == std::string::npos || sep == 0)
        throw ConfigError(fmt::format(
            "store URL \"{}\" is malformed: expected file:///DIR, s3://BUCKET/PREFIX or sftp://HOST/DIR", url));
    const std::string scheme = url.substr(0, sep);
    if (scheme == "file") return std::make_unique<FileStore>(url, file_url_path(url));
    if (scheme == "s3") return std::make_unique<S3Store>(url, options);
    if (scheme == "sftp") return std::make_unique<SftpStore>(url, parse_sftp_url(url), options);
    throw ConfigError(fmt::format("store URL \"{}\": unknown scheme \"{}\" (expected file, s3 or sftp)", url, scheme));
}

}  // namespace bartl
