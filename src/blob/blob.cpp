// Backup blob streams built on libarchive: archive_read_disk walks the state (metadata,
// xattrs, ACLs, sparse maps), the pax writer + zstd filter produce the blob, and our callbacks
// hash every byte on its way to the sink. Extraction runs the same chain backwards into
// archive_write_disk, but every entry is validated by our own code first: libarchive's
// SECURE_NOABSOLUTEPATHS cannot be used because we rewrite names to absolute staging paths,
// so the containment checks below are what keeps a hostile archive inside staging.
#include "blob/blob.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <exception>
#include <optional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl {
namespace {

namespace stdfs = std::filesystem;

constexpr std::size_t kBlock = 64 * 1024;
constexpr const char* kManifestEntry = "bartl/manifest.json";
constexpr std::uint64_t kMaxManifestBytes = 1024 * 1024;
constexpr std::uint64_t kProgressStep = 1024 * 1024;
constexpr std::uint64_t kMinUnpackedLimit = 256ull * 1024 * 1024;
constexpr std::uint64_t kUnpackedRatio = 200;

struct ReadFree {
    void operator()(archive* a) const noexcept { archive_read_free(a); }
};
struct WriteFree {
    void operator()(archive* a) const noexcept { archive_write_free(a); }
};
struct EntryFree {
    void operator()(archive_entry* e) const noexcept { archive_entry_free(e); }
};
struct ResolverFree {
    void operator()(archive_entry_linkresolver* r) const noexcept { archive_entry_linkresolver_free(r); }
};
using ReadArchive = std::unique_ptr<archive, ReadFree>;
using WriteArchive = std::unique_ptr<archive, WriteFree>;
using Entry = std::unique_ptr<archive_entry, EntryFree>;
using Resolver = std::unique_ptr<archive_entry_linkresolver, ResolverFree>;

std::string la_error(archive* a) {
    const char* s = archive_error_string(a);
    return s != nullptr ? s : "unknown libarchive error";
}

/// Incremental SHA-256 (OpenSSL EVP).
class Sha256 {
public:
    Sha256() : ctx_(EVP_MD_CTX_new()) {
        if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
            EVP_MD_CTX_free(ctx_);
            throw RuntimeError("cannot initialise SHA-256 (OpenSSL EVP)");
        }
    }
    ~Sha256() { EVP_MD_CTX_free(ctx_); }
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(const void* data, std::size_t n) {
        if (n > 0 && EVP_DigestUpdate(ctx_, data, n) != 1) throw RuntimeError("SHA-256 update failed (OpenSSL EVP)");
    }
    /// Lower-case hex digest; the context is finished afterwards.
    std::string hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (EVP_DigestFinal_ex(ctx_, md, &len) != 1) throw RuntimeError("SHA-256 final failed (OpenSSL EVP)");
        std::string out;
        out.reserve(2 * len);
        for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
        return out;
    }

private:
    EVP_MD_CTX* ctx_;
};

/// Calls the progress callback at most once per kProgressStep bytes (it may talk to systemd).
class Throttle {
public:
    Throttle(ProgressFn fn, std::uint64_t total) : fn_(std::move(fn)), total_(total) {}
    void update(std::uint64_t done) {
        if (fn_ && done >= last_ + kProgressStep) {
            last_ = done;
            fn_(done, total_);
        }
    }
    void finish(std::uint64_t done) {
        if (fn_) fn_(done, total_);
    }

private:
    ProgressFn fn_;
    std::uint64_t total_;
    std::uint64_t last_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Writing

struct WriteCtx {
    explicit WriteCtx(ByteSink& s) : sink(s) {}
    ByteSink& sink;
    Sha256 sha;
    std::uint64_t written = 0;
    std::exception_ptr error;  // C callbacks cannot throw through libarchive
};

la_ssize_t write_cb(archive* a, void* p, const void* buf, size_t n) {
    auto* c = static_cast<WriteCtx*>(p);
    try {
        c->sha.update(buf, n);
        c->sink.write(buf, n);
        c->written += n;
        return static_cast<la_ssize_t>(n);
    } catch (...) {
        c->error = std::current_exception();
        archive_set_error(a, EIO, "writing the backup blob failed");
        return -1;
    }
}

/// Turns a failed libarchive write call into the exception that caused it (a sink error
/// captured in the callback) or a RuntimeError describing `what`.
[[noreturn]] void write_failed(archive* w, WriteCtx& ctx, const std::string& what) {
    if (ctx.error) std::rethrow_exception(ctx.error);
    throw RuntimeError(fmt::format("{}: {}", what, la_error(w)));
}

void write_data(archive* w, WriteCtx& ctx, const void* data, std::size_t n, const std::string& what) {
    // archive_write_data returns less than n only when the entry's declared size is reached
    // (the file grew while read): the rest is dropped, and the size check reports the change.
    if (n > 0 && archive_write_data(w, data, n) < 0) write_failed(w, ctx, what);
}

void write_manifest_entry(archive* w, WriteCtx& ctx, const std::string& json) {
    Entry e(archive_entry_new());
    archive_entry_set_pathname(e.get(), kManifestEntry);
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(json.size()));
    archive_entry_set_mtime(e.get(), std::time(nullptr), 0);
    if (archive_write_header(w, e.get()) < ARCHIVE_WARN) write_failed(w, ctx, "cannot write bartl/manifest.json");
    write_data(w, ctx, json.data(), json.size(), "cannot write bartl/manifest.json");
    if (archive_write_finish_entry(w) < ARCHIVE_WARN) write_failed(w, ctx, "cannot write bartl/manifest.json");
}

const char* unsupported_kind(mode_t type) {
    switch (type) {
        case AE_IFIFO: return "FIFO";
        case AE_IFSOCK: return "socket";
        case AE_IFCHR: return "character device";
        case AE_IFBLK: return "block device";
        default: return nullptr;
    }
}

/// Archives the tree at `root` as state/N/.
void write_tree(archive* w, WriteCtx& ctx, const std::string& root_in, std::size_t n, BlobWriteResult& result,
                Throttle& progress) {
    std::string root = stdfs::path(root_in).lexically_normal().string();
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    const std::string prefix = fmt::format("state/{}/", n);

    struct stat st {};
    if (::lstat(root.c_str(), &st) != 0)
        throw RuntimeError(fmt::format("cannot read state path {}: {}", root, std::strerror(errno)));
    if (!S_ISDIR(st.st_mode)) throw RuntimeError(fmt::format("state path {} is not a directory", root));

    ReadArchive disk(archive_read_disk_new());
    if (!disk) throw RuntimeError("cannot allocate a libarchive disk reader");
    // Physical: a symlink in the state is archived as a symlink, never followed out of the tree.
    archive_read_disk_set_symlink_physical(disk.get());
    archive_read_disk_set_standard_lookup(disk.get());
    if (archive_read_disk_open(disk.get(), root.c_str()) != ARCHIVE_OK)
        throw RuntimeError(fmt::format("cannot read state path {}: {}", root, la_error(disk.get())));

    // One resolver per root: a hard link between two state paths is stored as two copies,
    // because a restore only accepts links inside one state/N tree.
    Resolver resolver(archive_entry_linkresolver_new());
    archive_entry_linkresolver_set_strategy(resolver.get(), ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);

    Entry entry(archive_entry_new());
    std::vector<char> zeros;
    for (;;) {
        archive_entry_clear(entry.get());
        int r = archive_read_next_header2(disk.get(), entry.get());
        if (r == ARCHIVE_EOF) break;
        if (r == ARCHIVE_WARN || r == ARCHIVE_FAILED) {
            // Live apps delete temporary files while we walk: libarchive reports those as
            // ENOENT, and the backup goes on without them.
            if (archive_errno(disk.get()) == ENOENT) {
                result.changed_while_read.push_back(la_error(disk.get()));
                if (r == ARCHIVE_FAILED) continue;
            } else if (r == ARCHIVE_WARN) {
                result.warnings.push_back(la_error(disk.get()));
            } else {
                throw RuntimeError(fmt::format("cannot read {}: {}", root, la_error(disk.get())));
            }
        } else if (r != ARCHIVE_OK) {
            throw RuntimeError(fmt::format("cannot read {}: {}", root, la_error(disk.get())));
        }
        if (archive_read_disk_can_descend(disk.get())) archive_read_disk_descend(disk.get());

        const char* src_c = archive_entry_sourcepath(entry.get());
        if (src_c == nullptr) src_c = archive_entry_pathname(entry.get());
        const std::string src = src_c != nullptr ? src_c : root;
        const mode_t type = archive_entry_filetype(entry.get());
        if (const char* kind = unsupported_kind(type)) {
            result.warnings.push_back(fmt::format("{}: {} not backed up (a restore would refuse it)", src, kind));
            continue;
        }

        std::string rel;
        if (src != root) {
            const std::string dir_prefix = root == "/" ? root : root + "/";
            if (src.compare(0, dir_prefix.size(), dir_prefix) != 0)
                throw RuntimeError(fmt::format("unexpected path {} while reading {}", src, root));
            rel = src.substr(dir_prefix.size());
        }
        archive_entry_set_pathname(entry.get(), (prefix + rel).c_str());
        if (type == AE_IFLNK) {
            // Refused here rather than at restore: a backup that cannot be restored is worse
            // than a failed backup the operator sees today.
            const char* t = archive_entry_symlink(entry.get());
            const std::string target = t != nullptr ? t : "";
            if (const auto why = symlink_target_problem(target, rel))
                throw RuntimeError(fmt::format(
                    "cannot back up symlink {} -> {}: {}; restores refuse such links (they could point outside "
                    "the state), so make it relative and inside {}",
                    src, target, *why, root));
        }

        const la_int64_t size = archive_entry_size(entry.get());
        const time_t mtime = archive_entry_mtime(entry.get());
        const long mtime_ns = archive_entry_mtime_nsec(entry.get());

        archive_entry* e = entry.get();
        archive_entry* spare = nullptr;
        archive_entry_linkify(resolver.get(), &e, &spare);  // tar strategy: never defers, no spare
        if (e == nullptr) continue;

        r = archive_write_header(w, e);
        if (r < ARCHIVE_WARN) write_failed(w, ctx, fmt::format("cannot archive {}", src));
        if (r == ARCHIVE_WARN) result.warnings.push_back(fmt::format("{}: {}", src, la_error(w)));
        ++result.files;

        if (type == AE_IFREG && archive_entry_hardlink(e) == nullptr && size > 0) {
            std::int64_t pos = 0;
            bool vanished = false;
            for (;;) {
                const void* buf = nullptr;
                size_t len = 0;
                la_int64_t off = 0;
                r = archive_read_data_block(disk.get(), &buf, &len, &off);
                if (r == ARCHIVE_EOF) break;
                if (r < ARCHIVE_WARN) {
                    if (archive_errno(disk.get()) == ENOENT) {  // removed between listing and opening
                        vanished = true;
                        break;
                    }
                    throw RuntimeError(fmt::format("cannot read {}: {}", src, la_error(disk.get())));
                }
                if (off > pos) {
                    // A hole: the pax writer drops these bytes again for sparse entries, but
                    // needs them to keep its position (same as bsdtar).
                    if (zeros.empty()) zeros.assign(kBlock, 0);
                    for (auto gap = off - pos; gap > 0;) {
                        auto chunk = static_cast<std::size_t>(std::min<std::int64_t>(gap, kBlock));
                        write_data(w, ctx, zeros.data(), chunk, fmt::format("cannot archive {}", src));
                        gap -= static_cast<std::int64_t>(chunk);
                    }
                    pos = off;
                }
                write_data(w, ctx, buf, len, fmt::format("cannot archive {}", src));
                pos += static_cast<std::int64_t>(len);
                progress.update(result.bytes + static_cast<std::uint64_t>(pos));
            }
            result.bytes += static_cast<std::uint64_t>(size);
            struct stat after {};
            if (vanished || ::lstat(src.c_str(), &after) != 0 || after.st_size != size ||
                after.st_mtim.tv_sec != mtime || after.st_mtim.tv_nsec != mtime_ns)
                result.changed_while_read.push_back(src);
        }
        // The pax writer pads an entry that came up short with zeros, keeping the archive valid.
        if (archive_write_finish_entry(w) < ARCHIVE_WARN) write_failed(w, ctx, fmt::format("cannot archive {}", src));
    }
    archive_read_close(disk.get());
}

// ---------------------------------------------------------------------------------------------
// Reading

struct ReadCtx {
    ReadCtx(ByteSource& s, std::uint64_t expected, const std::string& l, const ProgressFn& p)
        : source(s), expected_size(expected), label(l), buf(kBlock), progress(p, expected) {}
    ByteSource& source;
    std::uint64_t expected_size;
    const std::string& label;
    Sha256 sha;
    std::uint64_t consumed = 0;
    std::vector<char> buf;
    Throttle progress;
    std::exception_ptr error;

    /// Reads the next chunk of the blob, hashing and counting it. Returns 0 at the end.
    std::size_t pull() {
        std::size_t n = source.read(buf.data(), buf.size());
        sha.update(buf.data(), n);
        consumed += n;
        // A source longer than the sidecar says is already known bad; stopping here keeps an
        // endless or oversized stream from being read (and extracted) to its end.
        if (consumed > expected_size)
            throw IntegrityError(fmt::format("{}: blob is longer than the expected {} bytes", label, expected_size));
        progress.update(consumed);
        return n;
    }
};

la_ssize_t read_cb(archive* a, void* p, const void** out) {
    auto* c = static_cast<ReadCtx*>(p);
    try {
        std::size_t n = c->pull();
        *out = c->buf.data();
        return static_cast<la_ssize_t>(n);
    } catch (...) {
        c->error = std::current_exception();
        archive_set_error(a, EIO, "reading the backup blob failed");
        return -1;
    }
}

/// Drains the source, then compares size and SHA-256 with what the sidecar promised.
void finish_and_verify(ReadCtx& ctx, std::uint64_t expected_size, const std::string& expected_sha256) {
    while (ctx.pull() > 0) {
    }
    ctx.progress.finish(ctx.consumed);
    const std::string got = ctx.sha.hex();
    if (ctx.consumed != expected_size)
        throw IntegrityError(fmt::format("{}: size mismatch: expected {} bytes, got {}", ctx.label, expected_size,
                                         ctx.consumed));
    std::string want = expected_sha256;
    std::transform(want.begin(), want.end(), want.begin(), [](unsigned char c) { return std::tolower(c); });
    if (got != want)
        throw IntegrityError(fmt::format("{}: SHA-256 mismatch: expected {}, got {}", ctx.label, want, got));
}

/// A failed libarchive read: the source's own exception when it caused it, else corruption.
[[noreturn]] void read_failed(archive* a, ReadCtx& ctx, const std::string& entry) {
    if (ctx.error) std::rethrow_exception(ctx.error);
    if (entry.empty())
        throw IntegrityError(fmt::format("{}: corrupt archive before its first entry: {}", ctx.label, la_error(a)));
    throw IntegrityError(fmt::format("{}: corrupt archive at entry \"{}\": {}", ctx.label, entry, la_error(a)));
}

/// Where an archive entry goes.
struct Placement {
    std::size_t root = 0;  ///< N of state/N
    std::string rel;       ///< path below state/N/ without trailing '/', "" for the root itself
    std::string key;       ///< "N/rel": identity for duplicate and hard link checks
};

std::vector<std::string_view> split(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        auto pos = s.find('/', start);
        out.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
        if (pos == std::string_view::npos) break;
        start = pos + 1;
    }
    return out;
}

/// Validates an archive name ("state/N/rel[/]") and returns where it belongs. Throws
/// IntegrityError naming the entry for anything else.
Placement place(const std::string& name, std::size_t roots, const std::string& label, const char* what = "entry") {
    auto reject = [&](const std::string& why) -> IntegrityError {
        return IntegrityError(fmt::format("{}: rejected {} \"{}\": {}", label, what, name, why));
    };
    if (name.empty()) throw reject("empty name");
    if (name.front() == '/') throw reject("absolute path");
    auto parts = split(name);
    if (parts.size() > 1 && parts.back().empty()) parts.pop_back();  // a directory's trailing '/'
    for (auto p : parts) {
        if (p.empty()) throw reject("empty path component");
        if (p == "..") throw reject("\"..\" component");
        if (p == ".") throw reject("\".\" component");
    }
    if (parts[0] == "db") throw reject("database dumps are not supported by this version of bartl");
    if (parts[0] != "state" || parts.size() < 2)
        throw reject("outside state/ (expected bartl/manifest.json or state/N/...)");
    auto num = parts[1];
    if (num.size() > 6 || !std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        (num.size() > 1 && num[0] == '0'))
        throw reject("state/N needs a decimal N");
    Placement pl;
    pl.root = std::stoul(std::string(num));
    if (pl.root >= roots)
        throw reject(fmt::format("state/{} is out of range: this restore has {} state path(s)", pl.root, roots));
    for (std::size_t i = 2; i < parts.size(); ++i) {
        if (!pl.rel.empty()) pl.rel += '/';
        pl.rel += parts[i];
    }
    pl.key = fmt::format("{}/{}", pl.root, pl.rel);
    return pl;
}

/// A symlink target must be relative and, read lexically from the link's directory, stay
/// inside its state/N tree. (Links through other links are covered by SECURE_SYMLINKS at
/// extraction time: nothing is ever written through a symlink.)
}  // namespace

std::optional<std::string> symlink_target_problem(const std::string& target, const std::string& link_rel) {
    if (target.empty()) return "empty target";
    if (target.front() == '/') return "absolute target";
    long depth = static_cast<long>(std::count(link_rel.begin(), link_rel.end(), '/'));  // dirs above the link
    bool descended = false;
    for (const auto& p : split(target)) {
        if (p.empty() || p == ".") continue;
        if (p == "..") {
            // "a/.." is not lexically "" when a is itself a link ("here -> ."): the kernel
            // climbs from wherever a leads. Only leading ".." components can be counted.
            if (descended) return "\"..\" after a path component (a link chain could climb out of the tree)";
            if (--depth < 0) return "target points outside the restored tree";
        } else {
            descended = true;
            ++depth;
        }
    }
    return std::nullopt;
}

namespace {

void check_symlink(const std::string& name, const Placement& pl, const std::string& target,
                   const std::string& label) {
    auto reject = [&](const std::string& why) -> IntegrityError {
        return IntegrityError(
            fmt::format("{}: rejected symlink \"{}\" -> \"{}\": {}", label, name, target, why));
    };
    if (target.empty()) throw reject("empty target");
    if (target.front() == '/') throw reject("absolute target");
    if (const auto why = symlink_target_problem(target, pl.rel)) throw reject(*why);
}

bool is_resource_error(int err) {
    return err == ENOSPC || err == EDQUOT || err == EIO || err == EROFS || err == ENOMEM || err == EMFILE ||
           err == ENFILE;
}

/// A failed archive_write_disk call: a full or broken disk is a RuntimeError (retry later);
/// anything else means the entry itself was unacceptable (e.g. writing through a symlink).
[[noreturn]] void extract_failed(archive* disk, const std::string& label, const std::string& entry) {
    const int err = archive_errno(disk);
    if (is_resource_error(err))
        throw RuntimeError(fmt::format("{}: cannot extract \"{}\": {}: {}", label, entry, la_error(disk),
                                       std::strerror(err)));
    throw IntegrityError(fmt::format("{}: rejected entry \"{}\": {}", label, entry, la_error(disk)));
}

/// Clears setuid/setgid on non-directories (setgid on a directory only sets the group of
/// new files there, which grants nothing) and drops security.capability xattrs: a restored
/// file must never gain privileges from a backup.
void neutralise(archive_entry* e, const std::string& name, std::vector<std::string>& warnings) {
    const mode_t perm = archive_entry_perm(e);
    const mode_t strip = archive_entry_filetype(e) == AE_IFDIR ? S_ISUID : (S_ISUID | S_ISGID);
    if (perm & strip) {
        archive_entry_set_perm(e, perm & ~strip);
        warnings.push_back(fmt::format("{}: setuid/setgid bit cleared", name));
    }
    if (archive_entry_xattr_count(e) == 0) return;
    struct Xattr {
        std::string name;
        std::string value;
    };
    std::vector<Xattr> keep;
    bool dropped = false;
    archive_entry_xattr_reset(e);
    const char* xname = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    while (archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
        if (std::string_view(xname) == "security.capability") {
            dropped = true;
            continue;
        }
        keep.push_back({xname, std::string(static_cast<const char*>(value), size)});
    }
    if (!dropped) return;
    archive_entry_xattr_clear(e);
    for (const auto& x : keep) archive_entry_xattr_add_entry(e, x.name.c_str(), x.value.data(), x.value.size());
    warnings.push_back(fmt::format("{}: security.capability xattr dropped", name));
}

/// Canonical, existing, empty staging directories as strings without trailing '/'.
std::vector<std::string> prepare_staging(const std::vector<stdfs::path>& staging) {
    std::vector<std::string> roots;
    for (const auto& s : staging) {
        std::error_code ec;
        // Canonical: SECURE_SYMLINKS refuses any symlink on the way, including one above staging.
        auto c = stdfs::canonical(s, ec);
        if (ec) throw RuntimeError(fmt::format("staging directory {}: {}", s.string(), ec.message()));
        if (!stdfs::is_directory(c, ec))
            throw RuntimeError(fmt::format("staging directory {} is not a directory", s.string()));
        if (!stdfs::is_empty(c, ec) || ec)
            throw RuntimeError(fmt::format("staging directory {} is not empty", s.string()));
        roots.push_back(c.string());
    }
    return roots;
}

}  // namespace

BlobWriteResult write_blob(const BackupManifest& manifest, ByteSink& sink, int level, int threads,
                           const ProgressFn& progress) {
    BlobWriteResult result;
    WriteCtx ctx(sink);
    WriteArchive w(archive_write_new());
    if (!w) throw RuntimeError("cannot allocate a libarchive writer");
    if (archive_write_set_format_pax_restricted(w.get()) != ARCHIVE_OK ||
        archive_write_add_filter_zstd(w.get()) != ARCHIVE_OK)
        throw RuntimeError(fmt::format("cannot set up pax + zstd writer: {}", la_error(w.get())));
    // Linux names are bytes, and bartld may run in the C locale where libarchive cannot
    // convert them to UTF-8: store them as they are (pax hdrcharset=BINARY) instead of
    // warning about every non-ASCII name. GNU tar and bsdtar restore the same bytes.
    if (archive_write_set_format_option(w.get(), "pax", "hdrcharset", "BINARY") != ARCHIVE_OK)
        throw RuntimeError(fmt::format("cannot set up pax writer: {}", la_error(w.get())));
    if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    // threads=1 would still run zstd's multi-threaded engine with one worker and its 8 MiB
    // jobs (~60 MiB); leaving the option unset keeps zstd single-threaded and streaming in a
    // few MiB (invariant 7: memory bounded by configuration, not data).
    const auto options = threads == 1 ? fmt::format("zstd:compression-level={}", level)
                                      : fmt::format("zstd:compression-level={},zstd:threads={}", level, threads);
    if (archive_write_set_options(w.get(), options.c_str()) != ARCHIVE_OK)
        throw ConfigError(fmt::format("compression zstd:{} with {} thread(s) is not supported: {}", level, threads,
                                      la_error(w.get())));
    archive_write_set_bytes_per_block(w.get(), kBlock);
    // No padding after the zstd frame: `zstd -dc` would reject trailing zeros.
    archive_write_set_bytes_in_last_block(w.get(), 1);
    if (archive_write_open(w.get(), &ctx, nullptr, write_cb, nullptr) != ARCHIVE_OK)
        write_failed(w.get(), ctx, "cannot start the backup blob");

    Throttle throttle(progress, 0);
    write_manifest_entry(w.get(), ctx, manifest.to_archive_json());
    for (std::size_t n = 0; n < manifest.paths.size(); ++n)
        write_tree(w.get(), ctx, manifest.paths[n], n, result, throttle);
    if (archive_write_close(w.get()) != ARCHIVE_OK) write_failed(w.get(), ctx, "cannot finish the backup blob");
    throttle.finish(result.bytes);

    result.blob_size = ctx.written;
    result.sha256 = ctx.sha.hex();
    return result;
}

BlobExtractResult extract_blob(ByteSource& source, std::uint64_t expected_size, const std::string& expected_sha256,
                               const std::vector<std::filesystem::path>& staging, const ProgressFn& progress,
                               const BlobReadOptions& options) {
    const std::string& label = options.label;
    const auto roots = prepare_staging(staging);
    const std::uint64_t limit = options.max_unpacked != 0
                                    ? options.max_unpacked
                                    : std::max(kMinUnpackedLimit, kUnpackedRatio * expected_size);

    BlobExtractResult result;
    ReadCtx ctx(source, expected_size, label, progress);
    ReadArchive r(archive_read_new());
    if (!r) throw RuntimeError("cannot allocate a libarchive reader");
    // Only what bartl writes: fewer decoders, less attack surface.
    archive_read_support_filter_zstd(r.get());
    archive_read_support_format_tar(r.get());
    if (archive_read_open(r.get(), &ctx, nullptr, read_cb, nullptr) != ARCHIVE_OK) read_failed(r.get(), ctx, "");

    WriteArchive disk(archive_write_disk_new());
    if (!disk) throw RuntimeError("cannot allocate a libarchive disk writer");
    int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_XATTR |
                ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT;
    if (::geteuid() == 0) flags |= ARCHIVE_EXTRACT_OWNER;
    archive_write_disk_set_options(disk.get(), flags);
    // By name: a restore on another host maps "notes" to that host's uid for "notes".
    archive_write_disk_set_standard_lookup(disk.get());

    auto check_limit = [&](const std::string& entry) {
        if (static_cast<std::uint64_t>(archive_filter_bytes(r.get(), 0)) > limit)
            throw IntegrityError(fmt::format(
                "{}: archive unpacks to more than {} bytes (at entry \"{}\"): refusing a possible "
                "decompression bomb",
                label, limit, entry));
    };

    // libarchive sets an existing directory's mtime at once (not deferred like the ones it
    // creates), so extracting its children would overwrite it: staging roots get theirs last.
    std::vector<std::optional<timespec>> root_mtimes(roots.size());
    bool seen_manifest = false;
    std::string last_entry;
    std::set<std::string> seen;            // duplicates could replace a checked entry
    std::set<std::string> regular_files;   // the only acceptable hard link targets
    for (bool first = true;; first = false) {
        archive_entry* e = nullptr;
        int rc = archive_read_next_header(r.get(), &e);
        if (rc == ARCHIVE_EOF) break;
        if (rc < ARCHIVE_WARN) read_failed(r.get(), ctx, last_entry);
        const char* pn = archive_entry_pathname(e);
        if (pn == nullptr) throw IntegrityError(fmt::format("{}: entry after \"{}\" has no name", label, last_entry));
        const std::string name = pn;
        last_entry = name;
        check_limit(name);

        if (name == kManifestEntry) {
            if (!first) throw IntegrityError(fmt::format("{}: {} is not the first entry", label, kManifestEntry));
            if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) != nullptr ||
                archive_entry_size(e) < 0 || static_cast<std::uint64_t>(archive_entry_size(e)) > kMaxManifestBytes)
                throw IntegrityError(
                    fmt::format("{}: {} is not a regular file of at most 1 MiB", label, kManifestEntry));
            std::string text;
            char buf[16384];
            for (;;) {
                la_ssize_t n = archive_read_data(r.get(), buf, sizeof buf);
                if (n < 0) read_failed(r.get(), ctx, name);
                if (n == 0) break;
                text.append(buf, static_cast<std::size_t>(n));
            }
            try {
                result.archive_manifest = BackupManifest::from_json(text);
            } catch (const std::exception& ex) {  // whatever the parser says: this backup is bad
                throw IntegrityError(fmt::format("{}: {}: {}", label, kManifestEntry, ex.what()));
            }
            seen_manifest = true;
            continue;
        }
        if (first)
            throw IntegrityError(
                fmt::format("{}: first entry is \"{}\", expected {}: not a bartl backup", label, name, kManifestEntry));

        const Placement pl = place(name, roots.size(), label);
        if (!seen.insert(pl.key).second)
            throw IntegrityError(fmt::format("{}: entry \"{}\" appears twice", label, name));
        const std::string& root = roots[pl.root];
        const std::string dest = pl.rel.empty() ? root : root + "/" + pl.rel;

        const mode_t type = archive_entry_filetype(e);
        const char* hardlink = archive_entry_hardlink(e);
        const char* symlink = archive_entry_symlink(e);
        if (hardlink != nullptr) {
            if (symlink != nullptr || (type != AE_IFREG && type != 0))
                throw IntegrityError(fmt::format("{}: rejected entry \"{}\": malformed hard link", label, name));
            const Placement target = place(hardlink, roots.size(), label, "hard link target");
            if (target.root != pl.root || !regular_files.count(target.key))
                throw IntegrityError(fmt::format(
                    "{}: rejected hard link \"{}\" -> \"{}\": target is not a file extracted earlier in the same "
                    "state/{}/ tree",
                    label, name, hardlink, pl.root));
            archive_entry_set_hardlink(e, (roots[target.root] + "/" + target.rel).c_str());
        } else if (type == AE_IFLNK) {
            if (pl.rel.empty())
                throw IntegrityError(fmt::format("{}: rejected entry \"{}\": a state root must be a directory",
                                                 label, name));
            check_symlink(name, pl, symlink != nullptr ? symlink : "", label);
        } else if (type == AE_IFREG) {
            if (pl.rel.empty())
                throw IntegrityError(fmt::format("{}: rejected entry \"{}\": a state root must be a directory",
                                                 label, name));
        } else if (type != AE_IFDIR) {
            const char* kind = unsupported_kind(type);
            throw IntegrityError(fmt::format("{}: rejected entry \"{}\": {} not allowed in a backup", label, name,
                                             kind != nullptr ? kind : "unknown file type"));
        }
        neutralise(e, name, result.warnings);
        archive_entry_set_pathname(e, dest.c_str());
        if (pl.rel.empty() && archive_entry_mtime_is_set(e))
            root_mtimes[pl.root] = timespec{archive_entry_mtime(e), archive_entry_mtime_nsec(e)};

        rc = archive_write_header(disk.get(), e);
        if (rc < ARCHIVE_WARN) extract_failed(disk.get(), label, name);
        if (rc == ARCHIVE_WARN) result.warnings.push_back(fmt::format("{}: {}", name, la_error(disk.get())));
        if (type == AE_IFREG && hardlink == nullptr) {
            regular_files.insert(pl.key);
            result.bytes += static_cast<std::uint64_t>(std::max<la_int64_t>(0, archive_entry_size(e)));
        }
        for (;;) {
            const void* buf = nullptr;
            size_t len = 0;
            la_int64_t off = 0;
            rc = archive_read_data_block(r.get(), &buf, &len, &off);
            if (rc == ARCHIVE_EOF) break;
            if (rc < ARCHIVE_WARN) read_failed(r.get(), ctx, name);
            check_limit(name);
            // write_disk reports a failed write(2) (ENOSPC, EIO) as ARCHIVE_WARN, not FATAL:
            // anything but OK here means the file on disk is not the file in the archive.
            if (archive_write_data_block(disk.get(), buf, len, off) != ARCHIVE_OK)
                extract_failed(disk.get(), label, name);
        }
        rc = archive_write_finish_entry(disk.get());
        if (rc < ARCHIVE_WARN) extract_failed(disk.get(), label, name);
        if (rc == ARCHIVE_WARN) result.warnings.push_back(fmt::format("{}: {}", name, la_error(disk.get())));
        ++result.files;
    }
    // Applies the deferred directory modes and mtimes.
    if (archive_write_close(disk.get()) < ARCHIVE_WARN)
        throw RuntimeError(fmt::format("{}: cannot finish extraction: {}", label, la_error(disk.get())));
    for (std::size_t i = 0; i < roots.size(); ++i) {
        if (!root_mtimes[i]) continue;
        const timespec times[2] = {{0, UTIME_OMIT}, *root_mtimes[i]};
        if (::utimensat(AT_FDCWD, roots[i].c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
            result.warnings.push_back(fmt::format("{}: cannot set mtime: {}", roots[i], std::strerror(errno)));
    }
    if (!seen_manifest) throw IntegrityError(fmt::format("{}: archive holds no {}", label, kManifestEntry));
    finish_and_verify(ctx, expected_size, expected_sha256);
    return result;
}

void check_blob(ByteSource& source, std::uint64_t expected_size, const std::string& expected_sha256,
                const BlobReadOptions& options) {
    ReadCtx ctx(source, expected_size, options.label, {});
    finish_and_verify(ctx, expected_size, expected_sha256);
}

}  // namespace bartl
