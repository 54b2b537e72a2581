// Helpers for the blob tests: scratch directories, file-backed byte streams, tree comparison.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "blob/blob.hpp"
#include "util/byte_stream.hpp"
#include "../test_util.hpp"

namespace bartl::test {

namespace stdfs = std::filesystem;

/// ByteSink appending to a file.
class FileSink : public ByteSink {
public:
    explicit FileSink(const stdfs::path& p) : out_(p, std::ios::binary | std::ios::trunc) {}
    void write(const void* data, std::size_t n) override {
        out_.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
        if (!out_) throw RuntimeError("test sink write failed");
    }
    void close() { out_.close(); }

private:
    std::ofstream out_;
};

/// ByteSink that only counts.
class DiscardSink : public ByteSink {
public:
    void write(const void*, std::size_t n) override { bytes += n; }
    std::uint64_t bytes = 0;
};

/// ByteSource reading a file in small, uneven chunks (exercises partial reads).
class FileSource : public ByteSource {
public:
    explicit FileSource(const stdfs::path& p) : in_(p, std::ios::binary) {
        if (!in_) throw std::runtime_error("cannot open " + p.string());
    }
    std::size_t read(void* data, std::size_t n) override {
        in_.read(static_cast<char*>(data), static_cast<std::streamsize>(std::min<std::size_t>(n, 7001)));
        return static_cast<std::size_t>(in_.gcount());
    }

private:
    std::ifstream in_;
};

/// The manifest of a backup of `paths` (notes 2.1.0, zstd:3, one "path" component each).
inline BackupManifest manifest_for(std::vector<std::string> paths) {
    BackupManifest m;
    m.app = "notes";
    m.version = "2.1.0";
    m.created = "2026-11-30T03:09:04Z";
    m.host = "testhost";
    m.id = "3f9a0c1d";
    m.compression = "zstd:3";
    for (const auto& p : paths) m.components.push_back({"path", p});
    m.paths = std::move(paths);
    return m;
}

/// Read options with a label and an unpacked-bytes limit (0 = the default limit).
inline BlobReadOptions read_opts(const std::string& label, std::uint64_t max_unpacked) {
    BlobReadOptions o;
    o.label = label;
    o.max_unpacked = max_unpacked;
    return o;
}

/// Every name below `root` (relative, sorted), with no symlink followed.
inline std::vector<std::string> list_tree(const stdfs::path& root) {
    std::vector<std::string> out;
    for (auto it = stdfs::recursive_directory_iterator(root); it != stdfs::recursive_directory_iterator(); ++it)
        out.push_back(it->path().lexically_relative(root).string());  // never resolves symlinks
    std::sort(out.begin(), out.end());
    return out;
}

/// user.* and system.posix_acl_* extended attributes of `p` (not following symlinks).
inline std::map<std::string, std::string> xattrs(const stdfs::path& p) {
    std::map<std::string, std::string> out;
    char names[4096];
    ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
    for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(names + i)) + 1) {
        std::string name = names + i;
        if (name.rfind("user.", 0) != 0 && name.rfind("system.posix_acl", 0) != 0) continue;
        char value[4096];
        ssize_t v = ::lgetxattr(p.c_str(), name.c_str(), value, sizeof value);
        out[name] = v >= 0 ? std::string(value, static_cast<std::size_t>(v)) : "<error>";
    }
    return out;
}

/// Output of a shell command (for GNU tar and zstd).
inline std::string run(const std::string& cmd) {
    std::string out;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (!f) throw std::runtime_error("popen " + cmd);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    int rc = ::pclose(f);
    if (rc != 0) throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + cmd);
    return out;
}

}  // namespace bartl::test
