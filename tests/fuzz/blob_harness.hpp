// Shared by fuzz_blob and fuzz_archive: feeds bytes to bartl::extract_blob as a blob, into
// two fresh empty staging directories, with the expected size and SHA-256 computed from the
// bytes so the integrity check passes and the archive entry validator is what is exercised.
// Afterwards it checks that extract_blob threw only documented errors, that nothing was
// created beside the staging directories (whatever extract_blob said), and, when it
// succeeded, that the staged trees (what a restore commits) hold only directories, regular
// files without setuid/setgid bits, and symlinks that resolve, following every link on the
// way, inside their own staging directory.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <openssl/evp.h>

#include "blob/blob.hpp"
#include "core/error.hpp"
#include "fuzz_common.hpp"

namespace bartl_fuzz {

namespace stdfs = std::filesystem;

class MemorySource : public bartl::ByteSource {
public:
    MemorySource(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    std::size_t read(void* out, std::size_t n) override {
        // Short reads of varying size exercise the reader's buffering.
        n = std::min({n, size_ - pos_, std::size_t(1) + (pos_ * 7919 % 8192)});
        std::memcpy(out, data_ + pos_, n);
        pos_ += n;
        return n;
    }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

inline std::string sha256_hex(const std::uint8_t* data, std::size_t size) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data, size, md, &len, EVP_sha256(), nullptr);
    static const char* hex = "0123456789abcdef";
    std::string s;
    for (unsigned i = 0; i < len; ++i) {
        s += hex[md[i] >> 4];
        s += hex[md[i] & 15];
    }
    return s;
}

/// The process's scratch directory: $BARTL_FUZZ_TMP, else /dev/shm (or $TMPDIR, /tmp).
inline const stdfs::path& scratch() {
    static const stdfs::path dir = [] {
        std::string base;
        if (const char* t = std::getenv("BARTL_FUZZ_TMP"); t && *t) base = t;
        else if (::access("/dev/shm", W_OK) == 0) base = "/dev/shm";
        else if (const char* t = std::getenv("TMPDIR"); t && *t) base = t;
        else base = "/tmp";
        std::string tmpl = base + "/bartl-fuzz-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) fail("cannot create a scratch directory under " + base);
        stdfs::path p = stdfs::canonical(tmpl);
        // Removed at exit; a crash leaves it for inspection.
        std::atexit([] { std::error_code ec; stdfs::remove_all(scratch(), ec); });
        return p;
    }();
    return dir;
}

inline bool within(const stdfs::path& inner, const stdfs::path& outer) {
    return std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end()).first == outer.end();
}

inline void check_beside(const stdfs::path& run, const std::vector<stdfs::path>& roots) {
    for (const auto& e : stdfs::directory_iterator(run)) {
        bool is_root = false;
        for (const auto& r : roots) is_root |= e.path() == r;
        if (!is_root) fail("extract_blob created " + e.path().string() + " outside the staging directories");
    }
}

/// What a successful extraction leaves in staging is what a restore commits.
inline void check_staged(const std::vector<stdfs::path>& roots) {
    for (const auto& r : roots) {
        struct stat rs {};
        if (::lstat(r.c_str(), &rs) != 0 || !S_ISDIR(rs.st_mode))
            fail("staging directory " + r.string() + " was replaced by a non-directory");
        for (auto it = stdfs::recursive_directory_iterator(r); it != stdfs::recursive_directory_iterator(); ++it) {
            const stdfs::path p = it->path();
            struct stat st {};
            if (::lstat(p.c_str(), &st) != 0) continue;
            if (S_ISLNK(st.st_mode)) {
                std::error_code ec;
                const stdfs::path resolved = stdfs::weakly_canonical(p, ec);
                if (ec) continue;  // a link loop (ELOOP) goes nowhere
                if (!within(resolved, r))
                    fail("restored symlink " + p.string() + " -> " + stdfs::read_symlink(p).string() +
                         " resolves to " + resolved.string() + ", outside its staging directory " + r.string());
            } else if (S_ISREG(st.st_mode)) {
                if (st.st_mode & (S_ISUID | S_ISGID)) fail("setuid/setgid file restored: " + p.string());
            } else if (!S_ISDIR(st.st_mode)) {
                fail("non-file, non-directory, non-symlink restored: " + p.string());
            }
        }
    }
}

/// Extracts `blob` into fresh staging; aborts on a broken contract.
inline void extract(const std::uint8_t* blob, std::size_t size) {
    const stdfs::path run = scratch() / "run";
    std::error_code ec;
    stdfs::remove_all(run, ec);
    stdfs::create_directory(run);
    const std::vector<stdfs::path> roots = {run / "s0", run / "s1"};
    for (const auto& r : roots) stdfs::create_directory(r);

    MemorySource src(blob, size);
    bartl::BlobReadOptions opts;
    opts.label = "fuzz blob";
    opts.max_unpacked = 16u << 20;  // small, so a bomb costs little time; the limit is still checked
    bool ok = false;
    try {
        bartl::extract_blob(src, size, sha256_hex(blob, size), roots, {}, opts);
        ok = true;
    } catch (const bartl::IntegrityError&) {
    } catch (const bartl::RuntimeError&) {
        // Also documented (write errors, source errors).
    } catch (const std::exception& e) {
        unexpected("extract_blob", e);
    }
    check_beside(run, roots);
    if (ok) check_staged(roots);  // a failed extraction's staging is discarded by the caller
    // Symlinks and read-only modes could stop remove_all: make everything writable first.
    for (auto it = stdfs::recursive_directory_iterator(run, ec); !ec && it != stdfs::recursive_directory_iterator();
         it.increment(ec))
        if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
    stdfs::remove_all(run, ec);
    if (ec) fail("cannot clean staging: " + ec.message());
}

}  // namespace bartl_fuzz
