// Builds archives entry by entry with libarchive, as an attacker (or an operator by hand)
// would: for the hostile-archive and streamed-section tests.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <catch2/catch.hpp>
#include <string>
#include <utility>

#include "blob_test_util.hpp"

namespace bartl::test {

/// An in-archive manifest that parses (paths: one state path).
inline const std::string kManifest = R"({"format":1,"app":"notes","version":"1.0.0","created":"2026-11-30T03:09:04Z",
"host":"h","id":"00000000","compression":"zstd:3","encryption":null,"components":[],"paths":["/x"]})";

/// Writes a pax+zstd archive entry by entry, like an attacker with libarchive would.
class Builder {
public:
    explicit Builder(const stdfs::path& file) : file_(file), a_(archive_write_new()) {
        archive_write_set_format_pax_restricted(a_);
        archive_write_add_filter_zstd(a_);
        archive_write_set_bytes_in_last_block(a_, 1);
        REQUIRE(archive_write_open_filename(a_, file.c_str()) == ARCHIVE_OK);
    }
    ~Builder() {
        if (a_) archive_write_free(a_);
    }
    Builder& file(const std::string& name, const std::string& content, mode_t perm = 0644,
                  const char* xattr_name = nullptr) {
        auto* e = entry(name, AE_IFREG, perm);
        archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
        if (xattr_name) archive_entry_xattr_add_entry(e, xattr_name, "\x01\x00\x00\x02", 4);
        return put(e, content);
    }
    Builder& manifest(const std::string& json = kManifest) { return file("bartl/manifest.json", json); }
    Builder& dir(const std::string& name, mode_t perm = 0755) { return put(entry(name, AE_IFDIR, perm)); }
    Builder& symlink(const std::string& name, const std::string& target) {
        auto* e = entry(name, AE_IFLNK, 0777);
        archive_entry_set_symlink(e, target.c_str());
        return put(e);
    }
    Builder& hardlink(const std::string& name, const std::string& target) {
        auto* e = entry(name, AE_IFREG, 0644);
        archive_entry_set_hardlink(e, target.c_str());
        return put(e);
    }
    Builder& special(const std::string& name, mode_t type) {
        auto* e = entry(name, type, 0644);
        archive_entry_set_rdev(e, makedev(1, 3));
        return put(e);
    }
    /// Closes the archive; returns its size and SHA-256 (so only the content is hostile).
    std::pair<std::uint64_t, std::string> finish() {
        REQUIRE(archive_write_close(a_) == ARCHIVE_OK);
        archive_write_free(a_);
        a_ = nullptr;
        return {stdfs::file_size(file_), run("sha256sum '" + file_.string() + "'").substr(0, 64)};
    }

private:
    archive_entry* entry(const std::string& name, mode_t type, mode_t perm) {
        auto* e = archive_entry_new();
        archive_entry_set_pathname(e, name.c_str());
        archive_entry_set_filetype(e, type);
        archive_entry_set_perm(e, perm);
        archive_entry_set_mtime(e, 1000000000, 0);
        return e;
    }
    Builder& put(archive_entry* e, const std::string& content = "") {
        REQUIRE(archive_write_header(a_, e) >= ARCHIVE_WARN);
        if (!content.empty()) REQUIRE(archive_write_data(a_, content.data(), content.size()) == (la_ssize_t)content.size());
        archive_entry_free(e);
        return *this;
    }
    stdfs::path file_;
    archive* a_;
};

}  // namespace bartl::test
