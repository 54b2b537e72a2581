// Backup blob streams built on libarchive: archive_read_disk walks the state (metadata,
// xattrs, ACLs, sparse maps), the pax writer + zstd filter produce the blob, and our callbacks
// hash every byte on its way to the sink. Extraction runs the same chain backwards into
// archive_write_disk, but every entry is validated by our own code first: libarchive's
// SECURE_NOABSOLUTEPATHS cannot be used because we rewrite names to absolute staging paths,
// so the containment checks below are what keeps a hostile archive inside staging.
#include "blob/blob.hpp"
#include "util/sha256.hpp"

#include "blob/libarchive.hpp"
#include <fcntl.h>
#include <fnmatch.h>
#include <locale.h>
#include <openssl/evp.h>
#include <zstd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <optional>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "blob/pipe.hpp"
#include "core/error.hpp"
#include "core/marker.hpp"

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
    void operator()(archive* a) const noexcept { la::archive_read_free(a); }
};
struct WriteFree {
    void operator()(archive* a) const noexcept { la::archive_write_free(a); }
};
struct EntryFree {
    void operator()(archive_entry* e) const noexcept { la::archive_entry_free(e); }
};
struct ResolverFree {
    void operator()(archive_entry_linkresolver* r) const noexcept { la::archive_entry_linkresolver_free(r); }
};
using ReadArchive = std::unique_ptr<archive, ReadFree>;
using WriteArchive = std::unique_ptr<archive, WriteFree>;
using Entry = std::unique_ptr<archive_entry, EntryFree>;
using Resolver = std::unique_ptr<archive_entry_linkresolver, ResolverFree>;

std::string la_error(archive* a) {
    const char* s = la::archive_error_string(a);
    return s != nullptr ? s : "unknown libarchive error";
}

/// Incremental SHA-256 (OpenSSL EVP).
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

/// Makes libarchive handle names as raw bytes on this thread, whatever the process locale
/// (uselocale(3) with the C locale; other threads of bartld are not affected). Linux names
/// are bytes, and restoring them must give the same bytes: an ASCII name needs no pax
/// header at all, and any other name cannot be converted from the C locale, so libarchive
/// stores it as it is with `hdrcharset=BINARY` for that entry, which readers (libarchive,
/// GNU tar) restore byte for byte. The alternative, UTF-8 `path` records, is read back
/// through libarchive's UTF-8 conversion, which normalises to NFC: a name written in NFD
/// (macOS, Samba) would come back with other bytes, and an NFC and an NFD name side by
/// side would collide.
class RawNames {
public:
    RawNames() : loc_(::newlocale(LC_CTYPE_MASK, "C", static_cast<locale_t>(nullptr))) {
        if (loc_ != static_cast<locale_t>(nullptr)) old_ = ::uselocale(loc_);
    }
    ~RawNames() {
        if (loc_ == static_cast<locale_t>(nullptr)) return;
        ::uselocale(old_);
        ::freelocale(loc_);
    }
    RawNames(const RawNames&) = delete;
    RawNames& operator=(const RawNames&) = delete;

private:
    locale_t loc_;
    locale_t old_ = static_cast<locale_t>(nullptr);
};

// ---------------------------------------------------------------------------------------------
// Writing

/// What a libarchive callback could not throw through the C library: the exception is kept
/// here and rethrown by the caller when libarchive reports the failure.
struct CallbackState {
    std::exception_ptr error;
};

/// The compressed blob's way out: every byte is hashed, counted and written to the sink.
struct WriteCtx {
    explicit WriteCtx(ByteSink& s) : sink(s) {}
    ByteSink& sink;
    Sha256 sha;
    std::uint64_t written = 0;

    /// Hashes and writes `n` bytes; throws what the sink throws.
    void write(const void* buf, std::size_t n) {
        if (n == 0) return;
        sha.update(buf, n);
        sink.write(buf, n);
        written += n;
    }
};

/// The tar stream's way out: the pipe to the compressor thread.
struct TarOut : CallbackState {
    explicit TarOut(ChunkPipe& p) : pipe(p) {}
    ChunkPipe& pipe;
};

la_ssize_t tar_out_cb(archive* a, void* p, const void* buf, size_t n) {
    auto* t = static_cast<TarOut*>(p);
    if (t->pipe.push(buf, n)) return static_cast<la_ssize_t>(n);
    la::archive_set_error(a, ECANCELED, "the compressor stopped");
    return -1;
}

/// Turns a failed libarchive write call into the exception that caused it (a sink error
/// captured in the callback) or a RuntimeError describing `what`.
[[noreturn]] void write_failed(archive* w, CallbackState& ctx, const std::string& what) {
    if (ctx.error) std::rethrow_exception(ctx.error);
    throw RuntimeError(fmt::format("{}: {}", what, la_error(w)));
}

void write_data(archive* w, CallbackState& ctx, const void* data, std::size_t n, const std::string& what) {
    // archive_write_data returns less than n only when the entry's declared size is reached
    // (the file grew while read): the rest is dropped, and the size check reports the change.
    if (n > 0 && la::archive_write_data(w, data, n) < 0) write_failed(w, ctx, what);
}

void write_manifest_entry(archive* w, CallbackState& ctx, const std::string& json) {
    Entry e(la::archive_entry_new());
    la::archive_entry_set_pathname(e.get(), kManifestEntry);
    la::archive_entry_set_filetype(e.get(), AE_IFREG);
    la::archive_entry_set_perm(e.get(), 0644);
    la::archive_entry_set_size(e.get(), static_cast<la_int64_t>(json.size()));
    la::archive_entry_set_mtime(e.get(), std::time(nullptr), 0);
    if (la::archive_write_header(w, e.get()) < ARCHIVE_WARN) write_failed(w, ctx, "cannot write bartl/manifest.json");
    write_data(w, ctx, json.data(), json.size(), "cannot write bartl/manifest.json");
    if (la::archive_write_finish_entry(w) < ARCHIVE_WARN) write_failed(w, ctx, "cannot write bartl/manifest.json");
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

/// archive_read_next_header2 on a disk reader, in a frame of its own: libarchive 3.6.2 leaks a
/// message inside it when the last entries of a walk vanished, and tests/lsan.supp and
/// tests/valgrind.supp name this frame to suppress exactly that (never bartl's own frees).
[[gnu::noinline]] int next_disk_entry(archive* disk, archive_entry* entry) {
    const int r = la::archive_read_next_header2(disk, entry);
    asm volatile("" ::: "memory");  // no tail call: the frame stays in the stack the checkers see
    return r;
}

/// Archives the tree at `root` as state/N/.
/// Drops bartl's own user.bartl.state_id from an entry's xattrs: it belongs to the live state,
/// and a restore binds the new state's ID anyway.
void drop_state_id_xattr(archive_entry* e) {
    struct Xattr {
        std::string name;
        std::string value;
    };
    std::vector<Xattr> keep;
    bool found = false;
    la::archive_entry_xattr_reset(e);
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    while (la::archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        if (std::string_view(name) == kStateIdXattr) {
            found = true;
            continue;
        }
        keep.push_back({name, std::string(static_cast<const char*>(value), size)});
    }
    if (!found) return;
    la::archive_entry_xattr_clear(e);
    for (const auto& x : keep) la::archive_entry_xattr_add_entry(e, x.name.c_str(), x.value.data(), x.value.size());
}

void write_tree(archive* w, CallbackState& ctx, const std::string& root_in, std::size_t n, BlobWriteResult& result,
                Throttle& progress, const std::vector<std::string>& exclude) {
    std::string root = stdfs::path(root_in).lexically_normal().string();
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    const std::string prefix = fmt::format("state/{}/", n);

    struct stat st {};
    if (::lstat(root.c_str(), &st) != 0)
        throw RuntimeError(fmt::format("cannot read state path {}: {}", root, std::strerror(errno)));
    if (!S_ISDIR(st.st_mode)) throw RuntimeError(fmt::format("state path {} is not a directory", root));

    ReadArchive disk(la::archive_read_disk_new());
    if (!disk) throw RuntimeError("cannot allocate a libarchive disk reader");
    // Physical: a symlink in the state is archived as a symlink, never followed out of the tree.
    la::archive_read_disk_set_symlink_physical(disk.get());
    la::archive_read_disk_set_standard_lookup(disk.get());
    if (la::archive_read_disk_open(disk.get(), root.c_str()) != ARCHIVE_OK)
        throw RuntimeError(fmt::format("cannot read state path {}: {}", root, la_error(disk.get())));

    // One resolver per root: a hard link between two state paths is stored as two copies,
    // because a restore only accepts links inside one state/N tree.
    Resolver resolver(la::archive_entry_linkresolver_new());
    la::archive_entry_linkresolver_set_strategy(resolver.get(), ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);

    Entry entry(la::archive_entry_new());
    std::vector<char> zeros;
    for (;;) {
        la::archive_entry_clear(entry.get());
        int r = next_disk_entry(disk.get(), entry.get());
        if (r == ARCHIVE_EOF) break;
        if (r == ARCHIVE_WARN || r == ARCHIVE_FAILED) {
            // Live apps delete temporary files while we walk: libarchive reports those as
            // ENOENT, and the backup goes on without them.
            if (la::archive_errno(disk.get()) == ENOENT) {
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
        const char* src_c = la::archive_entry_sourcepath(entry.get());
        if (src_c == nullptr) src_c = la::archive_entry_pathname(entry.get());
        const std::string src = src_c != nullptr ? src_c : root;
        std::string rel;
        if (src != root) {
            const std::string dir_prefix = root == "/" ? root : root + "/";
            if (src.compare(0, dir_prefix.size(), dir_prefix) != 0)
                throw RuntimeError(fmt::format("unexpected path {} while reading {}", src, root));
            rel = src.substr(dir_prefix.size());
        }
        // An excluded directory is not descended into: nothing below it is read.
        if (!rel.empty() && path_excluded(rel, exclude)) {
            ++result.excluded;
            continue;
        }
        if (la::archive_read_disk_can_descend(disk.get())) la::archive_read_disk_descend(disk.get());

        const mode_t type = la::archive_entry_filetype(entry.get());
        if (const char* kind = unsupported_kind(type)) {
            result.warnings.push_back(fmt::format("{}: {} not backed up (a restore would refuse it)", src, kind));
            continue;
        }
        if (rel.empty()) drop_state_id_xattr(entry.get());
        la::archive_entry_set_pathname(entry.get(), (prefix + rel).c_str());
        if (type == AE_IFLNK) {
            // Refused here rather than at restore: a backup that cannot be restored is worse
            // than a failed backup the operator sees today.
            const char* t = la::archive_entry_symlink(entry.get());
            const std::string target = t != nullptr ? t : "";
            if (const auto why = symlink_target_problem(target, rel))
                throw RuntimeError(fmt::format(
                    "cannot back up symlink {} -> {}: {}; restores refuse such links (they could point outside "
                    "the state), so make it relative and inside {}",
                    src, target, *why, root));
        }

        const la_int64_t size = la::archive_entry_size(entry.get());
        const time_t mtime = la::archive_entry_mtime(entry.get());
        const long mtime_ns = la::archive_entry_mtime_nsec(entry.get());

        archive_entry* e = entry.get();
        archive_entry* spare = nullptr;
        la::archive_entry_linkify(resolver.get(), &e, &spare);  // tar strategy: never defers, no spare
        if (e == nullptr) continue;

        r = la::archive_write_header(w, e);
        if (r < ARCHIVE_WARN) write_failed(w, ctx, fmt::format("cannot archive {}", src));
        if (r == ARCHIVE_WARN) {
            // A non-ASCII name "can't be translated" from the C locale: stored as raw bytes,
            // as intended (see RawNames); anything else is worth a warning.
            const std::string why = la_error(w);
            if (why.rfind("Can't translate", 0) != 0) result.warnings.push_back(fmt::format("{}: {}", src, why));
        }
        ++result.files;

        if (type == AE_IFREG && la::archive_entry_hardlink(e) == nullptr && size > 0) {
            std::int64_t pos = 0;
            bool vanished = false;
            for (;;) {
                const void* buf = nullptr;
                size_t len = 0;
                la_int64_t off = 0;
                r = la::archive_read_data_block(disk.get(), &buf, &len, &off);
                if (r == ARCHIVE_EOF) break;
                if (r < ARCHIVE_WARN) {
                    if (la::archive_errno(disk.get()) == ENOENT) {  // removed between listing and opening
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
        if (la::archive_write_finish_entry(w) < ARCHIVE_WARN) write_failed(w, ctx, fmt::format("cannot archive {}", src));
    }
    la::archive_read_close(disk.get());
}

// ---------------------------------------------------------------------------------------------
// Reading

/// The blob's way in: every byte read from the source is hashed and counted.
struct ReadCtx : CallbackState {
    ReadCtx(ByteSource& s, std::uint64_t expected, const std::string& l)
        : source(s), expected_size(expected), label(l), buf(kBlock) {}
    ByteSource& source;
    std::uint64_t expected_size;
    const std::string& label;
    Sha256 sha;
    std::uint64_t consumed = 0;
    std::atomic<std::uint64_t> consumed_shared{0};  // for progress reports from another thread
    std::vector<char> buf;

    /// Reads the next chunk of the blob, hashing and counting it. Returns 0 at the end.
    std::size_t pull() {
        std::size_t n = source.read(buf.data(), buf.size());
        sha.update(buf.data(), n);
        consumed += n;
        consumed_shared.store(consumed, std::memory_order_relaxed);
        // A source longer than the sidecar says is already known bad; stopping here keeps an
        // endless or oversized stream from being read (and extracted) to its end.
        if (consumed > expected_size)
            throw IntegrityError(fmt::format("{}: blob is longer than the expected {} bytes", label, expected_size));
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
        la::archive_set_error(a, EIO, "reading the backup blob failed");
        return -1;
    }
}

/// Drains the source, then compares size and SHA-256 with what the sidecar promised.
void finish_and_verify(ReadCtx& ctx, std::uint64_t expected_size, const std::string& expected_sha256) {
    while (ctx.pull() > 0) {
    }
    const std::string got = ctx.sha.hex();
    if (ctx.consumed != expected_size)
        throw IntegrityError(fmt::format("{}: size mismatch: expected {} bytes, got {}", ctx.label, expected_size,
                                         ctx.consumed));
    std::string want = expected_sha256;
    std::transform(want.begin(), want.end(), want.begin(), [](unsigned char c) { return std::tolower(c); });
    if (got != want)
        throw IntegrityError(fmt::format("{}: SHA-256 mismatch: expected {}, got {}", ctx.label, want, got));
}

/// A failed libarchive read: the exception of the stage feeding it when that caused it, else
/// corruption of the archive (IntegrityError naming `entry`, the last entry read).
[[noreturn]] void read_failed(archive* a, CallbackState& ctx, const std::string& label, const std::string& entry) {
    if (ctx.error) std::rethrow_exception(ctx.error);
    if (entry.empty())
        throw IntegrityError(fmt::format("{}: corrupt archive before its first entry: {}", label, la_error(a)));
    throw IntegrityError(fmt::format("{}: corrupt archive at entry \"{}\": {}", label, entry, la_error(a)));
}

/// The fetch stage of a restore: reads the blob (hashing and counting it), decompresses it with
/// a libarchive "raw" reader + zstd filter into the pipe, stops a stream that unpacks to more
/// than `limit` bytes, then drains the source and checks size and SHA-256. The pipe ends with
/// close() only if all of that held, else with fail(the reason).
void fetch_stage(ChunkPipe& pipe, ReadCtx& ctx, const std::string& expected_sha256, std::uint64_t limit) {
    try {
        ReadArchive z(la::archive_read_new());
        if (!z) throw RuntimeError("cannot allocate a libarchive reader");
        // Only what bartl writes: one decoder, less attack surface.
        la::archive_read_support_filter_zstd(z.get());
        la::archive_read_support_format_raw(z.get());
        if (la::archive_read_open(z.get(), &ctx, nullptr, read_cb, nullptr) != ARCHIVE_OK)
            read_failed(z.get(), ctx, ctx.label, "");
        archive_entry* e = nullptr;
        const int rc = la::archive_read_next_header(z.get(), &e);
        if (rc == ARCHIVE_EOF)
            throw IntegrityError(fmt::format("{}: archive holds no {}", ctx.label, kManifestEntry));
        if (rc < ARCHIVE_WARN) read_failed(z.get(), ctx, ctx.label, "");
        std::uint64_t unpacked = 0;
        for (;;) {
            const void* buf = nullptr;
            size_t len = 0;
            la_int64_t off = 0;
            const int r = la::archive_read_data_block(z.get(), &buf, &len, &off);
            if (r == ARCHIVE_EOF) break;
            if (r < ARCHIVE_WARN) {
                if (ctx.error) std::rethrow_exception(ctx.error);
                throw IntegrityError(fmt::format("{}: corrupt compressed stream after {} unpacked bytes: {}",
                                                 ctx.label, unpacked, la_error(z.get())));
            }
            unpacked += len;
            if (unpacked > limit)
                throw IntegrityError(fmt::format(
                    "{}: archive unpacks to more than {} bytes: refusing a possible decompression bomb", ctx.label,
                    limit));
            if (!pipe.push(buf, len)) return;  // the extractor stopped; it reports why
        }
        finish_and_verify(ctx, ctx.expected_size, expected_sha256);
        pipe.close();
    } catch (...) {
        pipe.fail(std::current_exception());
    }
}

/// The extractor's side of the pipe, as a libarchive read callback.
struct PipeIn : CallbackState {
    explicit PipeIn(ChunkPipe& p, ReadCtx& f, Throttle& t) : pipe(p), fetch(f), progress(t) {}
    ChunkPipe& pipe;
    ReadCtx& fetch;
    Throttle& progress;
};

la_ssize_t pipe_in_cb(archive* a, void* p, const void** out) {
    auto* c = static_cast<PipeIn*>(p);
    try {
        const auto chunk = c->pipe.pop();
        c->progress.update(c->fetch.consumed_shared.load(std::memory_order_relaxed));
        *out = chunk.data();
        return static_cast<la_ssize_t>(chunk.size());
    } catch (...) {
        c->error = std::current_exception();
        la::archive_set_error(a, EIO, "reading the backup blob failed");
        return -1;
    }
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
    const int err = la::archive_errno(disk);
    if (is_resource_error(err))
        throw RuntimeError(fmt::format("{}: cannot extract \"{}\": {}: {}", label, entry, la_error(disk),
                                       std::strerror(err)));
    throw IntegrityError(fmt::format("{}: rejected entry \"{}\": {}", label, entry, la_error(disk)));
}

/// Clears setuid/setgid on non-directories (setgid on a directory only sets the group of
/// new files there, which grants nothing) and drops security.capability xattrs: a restored
/// file must never gain privileges from a backup.
void neutralise(archive_entry* e, const std::string& name, std::vector<std::string>& warnings) {
    const mode_t perm = la::archive_entry_perm(e);
    const mode_t strip = la::archive_entry_filetype(e) == AE_IFDIR ? S_ISUID : (S_ISUID | S_ISGID);
    if (perm & strip) {
        la::archive_entry_set_perm(e, perm & ~strip);
        warnings.push_back(fmt::format("{}: setuid/setgid bit cleared", name));
    }
    if (la::archive_entry_xattr_count(e) == 0) return;
    struct Xattr {
        std::string name;
        std::string value;
    };
    std::vector<Xattr> keep;
    bool dropped = false;
    la::archive_entry_xattr_reset(e);
    const char* xname = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    while (la::archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
        if (std::string_view(xname) == "security.capability") {
            dropped = true;
            continue;
        }
        keep.push_back({xname, std::string(static_cast<const char*>(value), size)});
    }
    if (!dropped) return;
    la::archive_entry_xattr_clear(e);
    for (const auto& x : keep) la::archive_entry_xattr_add_entry(e, x.name.c_str(), x.value.data(), x.value.size());
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

namespace {

/// Joins a pipeline thread on every way out of its scope, cancelling the pipe first so a
/// producer blocked on a full pipe returns.
class PipelineThread {
public:
    PipelineThread(ChunkPipe& pipe, std::thread t) : pipe_(pipe), t_(std::move(t)) {}
    ~PipelineThread() { join(); }
    PipelineThread(const PipelineThread&) = delete;
    PipelineThread& operator=(const PipelineThread&) = delete;
    /// Waits for the thread; cancels the pipe first unless the stream was finished normally.
    void join(bool cancel = true) {
        if (!t_.joinable()) return;
        if (cancel) pipe_.cancel();
        t_.join();
    }

private:
    ChunkPipe& pipe_;
    std::thread t_;
};

struct CCtxFree {
    void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
};

/// zstd's job size when it runs workers: zstd's default for level 3 (8 MiB jobs, several of
/// them buffered per worker) costs ~35 MiB per worker; 1 MiB jobs cost ~5 MiB and compress
/// ~1% worse.
constexpr int kZstdJobSize = 1 << 20;

/// Default worker count for threads = 0: one per core, at most this many.
constexpr unsigned kMaxDefaultThreads = 4;

/// The compressor stage of a backup: libzstd (the library libarchive's own zstd filter wraps,
/// used directly because libarchive 3.6 cannot set zstd's job size) turns the tar stream from
/// the pipe into one zstd frame with a content checksum, hashed on its way to the sink.
/// `threads` = 1 compresses on this thread, streaming; > 1 runs that many zstd workers.
void compress_stage(ChunkPipe& pipe, WriteCtx& ctx, int level, int threads, std::exception_ptr& error) {
    try {
        std::unique_ptr<ZSTD_CCtx, CCtxFree> z(ZSTD_createCCtx());
        if (!z) throw RuntimeError("cannot allocate a zstd compressor");
        auto unsupported = [&](const std::string& why) {
            return ConfigError(
                fmt::format("compression zstd:{} with {} thread(s) is not supported: {}", level, threads, why));
        };
        if (level < 1 || level > ZSTD_maxCLevel())
            throw unsupported(fmt::format("the level must be 1 to {}", ZSTD_maxCLevel()));
        auto set = [&](ZSTD_cParameter p, int v) {
            const size_t rc = ZSTD_CCtx_setParameter(z.get(), p, v);
            if (ZSTD_isError(rc)) throw unsupported(ZSTD_getErrorName(rc));
        };
        set(ZSTD_c_compressionLevel, level);
        set(ZSTD_c_checksumFlag, 1);  // `zstd -dc` and `zstd -t` check the content too
        if (threads > 1) {
            set(ZSTD_c_nbWorkers, threads);
            set(ZSTD_c_jobSize, kZstdJobSize);
        }
        std::vector<char> out(ZSTD_CStreamOutSize());
        // Feeds `in` (all of it; with ZSTD_e_end also the end of the frame), writing what
        // comes out. Standard streaming loop of zstd's examples (streaming_compression.c).
        auto feed = [&](ZSTD_inBuffer& in, ZSTD_EndDirective mode) {
            for (;;) {
                ZSTD_outBuffer o{out.data(), out.size(), 0};
                const size_t left = ZSTD_compressStream2(z.get(), &o, &in, mode);
                if (ZSTD_isError(left))
                    throw RuntimeError(fmt::format("zstd compression failed: {}", ZSTD_getErrorName(left)));
                ctx.write(out.data(), o.pos);
                if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size) return;
            }
        };
        for (;;) {
            const auto chunk = pipe.pop();
            if (chunk.empty()) break;
            ZSTD_inBuffer in{chunk.data(), chunk.size(), 0};
            feed(in, ZSTD_e_continue);
        }
        ZSTD_inBuffer none{nullptr, 0, 0};
        feed(none, ZSTD_e_end);
    } catch (const PipeCancelled&) {
        // The tar side failed and reports why.
    } catch (...) {
        error = std::current_exception();
        pipe.cancel();
    }
}

}  // namespace

bool path_excluded(const std::string& rel, const std::vector<std::string>& globs) {
    if (globs.empty()) return false;
    const auto slash = rel.rfind('/');
    const std::string base = slash == std::string::npos ? rel : rel.substr(slash + 1);
    for (const auto& g : globs) {
        if (g.find('/') == std::string::npos ? ::fnmatch(g.c_str(), base.c_str(), 0) == 0
                                             : ::fnmatch(g.c_str(), rel.c_str(), FNM_PATHNAME) == 0)
            return true;
    }
    return false;
}

BlobWriteResult write_blob(const BackupManifest& manifest, ByteSink& sink, int level, int threads,
                           const ProgressFn& progress) {
    la::load();
    if (threads <= 0)
        threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, kMaxDefaultThreads));
    BlobWriteResult result;
    WriteCtx ctx(sink);
    ChunkPipe pipe;
    std::exception_ptr compress_error;
    PipelineThread compressor(pipe, std::thread([&] { compress_stage(pipe, ctx, level, threads, compress_error); }));

    TarOut out(pipe);
    const RawNames raw_names;
    try {
        WriteArchive w(la::archive_write_new());
        if (!w) throw RuntimeError("cannot allocate a libarchive writer");
        if (la::archive_write_set_format_pax_restricted(w.get()) != ARCHIVE_OK)
            throw RuntimeError(fmt::format("cannot set up the pax writer: {}", la_error(w.get())));
        la::archive_write_set_bytes_per_block(w.get(), kBlock);
        la::archive_write_set_bytes_in_last_block(w.get(), 1);
        if (la::archive_write_open(w.get(), &out, nullptr, tar_out_cb, nullptr) != ARCHIVE_OK)
            write_failed(w.get(), out, "cannot start the backup blob");

        Throttle throttle(progress, 0);
        write_manifest_entry(w.get(), out, manifest.to_archive_json());
        for (std::size_t n = 0; n < manifest.paths.size(); ++n)
            write_tree(w.get(), out, manifest.paths[n], n, result, throttle, manifest.exclude);
        if (la::archive_write_close(w.get()) != ARCHIVE_OK) write_failed(w.get(), out, "cannot finish the backup blob");
        pipe.close();
        compressor.join(false);
        throttle.finish(result.bytes);
    } catch (...) {
        compressor.join();
        // A stopped compressor (full disk, unreachable store) is the cause of the tar side's error.
        if (compress_error) std::rethrow_exception(compress_error);
        throw;
    }
    if (compress_error) std::rethrow_exception(compress_error);

    result.blob_size = ctx.written;
    result.sha256 = ctx.sha.hex();
    return result;
}

namespace {

constexpr std::size_t kMaxWarnings = 100;

/// Appends a warning, keeping at most kMaxWarnings (memory bounded by configuration, not by
/// the archive: a hostile one could carry millions of setuid files).
void add_warning(BlobExtractResult& result, std::string text, std::uint64_t& dropped) {
    if (result.warnings.size() < kMaxWarnings)
        result.warnings.push_back(std::move(text));
    else
        ++dropped;
}

struct FileClose {
    void operator()(FILE* f) const noexcept { std::fclose(f); }
};

/// Symlink entries are set aside in an unlinked temporary pax file and created after every
/// other entry: while the other entries are written, staging holds no symlink at all, so
/// nothing can be written through one, and libarchive's SECURE_SYMLINKS walk (an openat()
/// per component of every absolute path) is needed only for the links themselves.
class DeferredSymlinks {
public:
    /// The temporary file goes in `dir` (a staging root: writable, on the state's filesystem,
    /// O_TMPFILE so it has no name), else in tmpfile(3)'s directory.
    explicit DeferredSymlinks(std::string dir) : dir_(std::move(dir)) {}

    /// Adds a (validated) symlink entry.
    void add(archive_entry* e) {
        if (!w_) open();
        if (la::archive_write_header(w_.get(), e) < ARCHIVE_WARN || la::archive_write_finish_entry(w_.get()) < ARCHIVE_WARN)
            throw RuntimeError(fmt::format("cannot set a symlink aside for extraction: {}", la_error(w_.get())));
    }
    /// Calls `fn(entry)` for every symlink added, in order.
    template <typename Fn>
    void replay(Fn&& fn) {
        if (!w_) return;
        if (la::archive_write_close(w_.get()) != ARCHIVE_OK)
            throw RuntimeError(fmt::format("cannot set symlinks aside for extraction: {}", la_error(w_.get())));
        std::rewind(f_.get());
        ReadArchive r(la::archive_read_new());
        if (!r) throw RuntimeError("cannot allocate a libarchive reader");
        la::archive_read_support_format_tar(r.get());
        if (la::archive_read_open_FILE(r.get(), f_.get()) != ARCHIVE_OK)
            throw RuntimeError(fmt::format("cannot read the symlinks set aside: {}", la_error(r.get())));
        for (;;) {
            archive_entry* e = nullptr;
            const int rc = la::archive_read_next_header(r.get(), &e);
            if (rc == ARCHIVE_EOF) break;
            if (rc < ARCHIVE_WARN)
                throw RuntimeError(fmt::format("cannot read the symlinks set aside: {}", la_error(r.get())));
            fn(e);
        }
    }

private:
    void open() {
        const int fd = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0) {
            f_.reset(::fdopen(fd, "w+"));
            if (!f_) ::close(fd);
        }
        if (!f_) f_.reset(std::tmpfile());
        if (!f_) throw RuntimeError(fmt::format("cannot create a temporary file: {}", std::strerror(errno)));
        w_.reset(la::archive_write_new());
        if (!w_ || la::archive_write_set_format_pax_restricted(w_.get()) != ARCHIVE_OK ||
            la::archive_write_open_FILE(w_.get(), f_.get()) != ARCHIVE_OK)
            throw RuntimeError("cannot set up a temporary archive for symlinks");
    }
    std::string dir_;
    std::unique_ptr<FILE, FileClose> f_;
    WriteArchive w_;
};

/// existing_type(): a component of the path is not a directory (ENOTDIR).
constexpr mode_t kBelowNonDirectory = ~mode_t{0};

/// lstat(2) of `path`: its type (S_IFMT bits); 0 if nothing is there (ENOENT; also
/// ENAMETOOLONG, a path too long for the kernel to resolve, which libarchive extracts
/// piecewise: a duplicate there stays inside staging); kBelowNonDirectory if a component is
/// a file (libarchive would replace that file with a directory). Throws RuntimeError for
/// other errors.
mode_t existing_type(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) return st.st_mode & S_IFMT;
    if (errno == ENOENT || errno == ENAMETOOLONG) return 0;
    if (errno == ENOTDIR) return kBelowNonDirectory;
    throw RuntimeError(fmt::format("cannot examine {}: {}", path, std::strerror(errno)));
}

}  // namespace

BlobExtractResult extract_blob(ByteSource& source, std::uint64_t expected_size, const std::string& expected_sha256,
                               const std::vector<std::filesystem::path>& staging, const ProgressFn& progress,
                               const BlobReadOptions& options) {
    la::load();
    const std::string& label = options.label;
    const auto roots = prepare_staging(staging);
    const std::uint64_t limit = options.max_unpacked != 0
                                    ? options.max_unpacked
                                    : std::max(kMinUnpackedLimit, kUnpackedRatio * expected_size);

    BlobExtractResult result;
    std::uint64_t dropped_warnings = 0;
    const RawNames raw_names;
    // Two stages on two cores: the fetch thread reads, hashes and decompresses; this one
    // validates and extracts. Staging is only committed by the caller after we return, and we
    // return only after the fetch stage has verified size and SHA-256.
    ReadCtx ctx(source, expected_size, label);
    ChunkPipe pipe;
    PipelineThread fetcher(pipe, std::thread([&] { fetch_stage(pipe, ctx, expected_sha256, limit); }));
    Throttle throttle(progress, expected_size);
    PipeIn in(pipe, ctx, throttle);

    ReadArchive r(la::archive_read_new());
    if (!r) throw RuntimeError("cannot allocate a libarchive reader");
    la::archive_read_support_format_tar(r.get());
    if (la::archive_read_open(r.get(), &in, nullptr, pipe_in_cb, nullptr) != ARCHIVE_OK)
        read_failed(r.get(), in, label, "");

    WriteArchive disk(la::archive_write_disk_new());
    if (!disk) throw RuntimeError("cannot allocate a libarchive disk writer");
    int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_XATTR |
                ARCHIVE_EXTRACT_SECURE_NODOTDOT;
    if (::geteuid() == 0) flags |= ARCHIVE_EXTRACT_OWNER;
    // No symlink exists in staging until the deferred ones are created at the end.
    la::archive_write_disk_set_options(disk.get(), flags);
    // By name: a restore on another host maps "notes" to that host's uid for "notes".
    la::archive_write_disk_set_standard_lookup(disk.get());

    // libarchive sets an existing directory's mtime at once (not deferred like the ones it
    // creates), so extracting its children would overwrite it: staging roots get theirs last.
    std::vector<std::optional<timespec>> root_mtimes(roots.size());
    DeferredSymlinks symlinks(roots.empty() ? std::string("/tmp") : roots.front());
    bool seen_manifest = false;
    std::string last_entry;

    // Writes one validated entry (pathname already rewritten to `dest`) and its data.
    auto extract = [&](archive_entry* e, const std::string& name, const std::string& dest, archive* data) {
        // Duplicates could replace an entry checked before: a non-directory never lands on an
        // existing path (staging starts empty), a directory only on a directory.
        const mode_t there = existing_type(dest);
        const bool is_dir = la::archive_entry_filetype(e) == AE_IFDIR && la::archive_entry_hardlink(e) == nullptr;
        if (there == kBelowNonDirectory)
            throw IntegrityError(fmt::format(
                "{}: rejected entry \"{}\": an earlier entry is a file where this one needs a directory", label,
                name));
        if (there != 0 && !(is_dir && there == S_IFDIR))
            throw IntegrityError(fmt::format(
                "{}: rejected {} \"{}\": the path already exists (the entry appears twice, or an earlier entry "
                "was written below it)",
                label, la::archive_entry_filetype(e) == AE_IFLNK ? "symlink" : "entry", name));
        int rc = la::archive_write_header(disk.get(), e);
        if (rc < ARCHIVE_WARN) extract_failed(disk.get(), label, name);
        if (rc == ARCHIVE_WARN) add_warning(result, fmt::format("{}: {}", name, la_error(disk.get())), dropped_warnings);
        while (data != nullptr) {
            const void* buf = nullptr;
            size_t len = 0;
            la_int64_t off = 0;
            rc = la::archive_read_data_block(data, &buf, &len, &off);
            if (rc == ARCHIVE_EOF) break;
            if (rc < ARCHIVE_WARN) read_failed(data, in, label, name);
            // write_disk reports a failed write(2) (ENOSPC, EIO) as ARCHIVE_WARN, not FATAL:
            // anything but OK here means the file on disk is not the file in the archive.
            if (la::archive_write_data_block(disk.get(), buf, len, off) != ARCHIVE_OK)
                extract_failed(disk.get(), label, name);
        }
        rc = la::archive_write_finish_entry(disk.get());
        if (rc < ARCHIVE_WARN) extract_failed(disk.get(), label, name);
        if (rc == ARCHIVE_WARN) add_warning(result, fmt::format("{}: {}", name, la_error(disk.get())), dropped_warnings);
        ++result.files;
    };

    for (bool first = true;; first = false) {
        archive_entry* e = nullptr;
        int rc = la::archive_read_next_header(r.get(), &e);
        if (rc == ARCHIVE_EOF) break;
        if (rc < ARCHIVE_WARN) read_failed(r.get(), in, label, last_entry);
        const char* pn = la::archive_entry_pathname(e);
        if (pn == nullptr) throw IntegrityError(fmt::format("{}: entry after \"{}\" has no name", label, last_entry));
        const std::string name = pn;
        last_entry = name;

        if (name == kManifestEntry) {
            if (!first) throw IntegrityError(fmt::format("{}: {} is not the first entry", label, kManifestEntry));
            if (la::archive_entry_filetype(e) != AE_IFREG || la::archive_entry_hardlink(e) != nullptr ||
                la::archive_entry_size(e) < 0 || static_cast<std::uint64_t>(la::archive_entry_size(e)) > kMaxManifestBytes)
                throw IntegrityError(
                    fmt::format("{}: {} is not a regular file of at most 1 MiB", label, kManifestEntry));
            std::string text;
            char buf[16384];
            for (;;) {
                la_ssize_t n = la::archive_read_data(r.get(), buf, sizeof buf);
                if (n < 0) read_failed(r.get(), in, label, name);
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
        const std::string& root = roots[pl.root];
        const std::string dest = pl.rel.empty() ? root : root + "/" + pl.rel;

        const mode_t type = la::archive_entry_filetype(e);
        const char* hardlink = la::archive_entry_hardlink(e);
        const char* symlink = la::archive_entry_symlink(e);
        if (hardlink != nullptr) {
            if (symlink != nullptr || (type != AE_IFREG && type != 0))
                throw IntegrityError(fmt::format("{}: rejected entry \"{}\": malformed hard link", label, name));
            const Placement target = place(hardlink, roots.size(), label, "hard link target");
            const std::string target_path = roots[target.root] + "/" + target.rel;
            // No symlink exists in staging yet, so this names the file itself.
            if (target.root != pl.root || target.rel.empty() || existing_type(target_path) != S_IFREG)
                throw IntegrityError(fmt::format(
                    "{}: rejected hard link \"{}\" -> \"{}\": target is not a file extracted earlier in the same "
                    "state/{}/ tree",
                    label, name, hardlink, pl.root));
            la::archive_entry_set_hardlink(e, target_path.c_str());
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
        std::vector<std::string> neutralised;
        neutralise(e, name, neutralised);
        for (auto& w : neutralised) add_warning(result, std::move(w), dropped_warnings);
        if (pl.rel.empty() && la::archive_entry_mtime_is_set(e))
            root_mtimes[pl.root] = timespec{la::archive_entry_mtime(e), la::archive_entry_mtime_nsec(e)};
        if (type == AE_IFLNK && hardlink == nullptr) {
            symlinks.add(e);  // by its archive name; placed again when replayed
            continue;
        }
        la::archive_entry_set_pathname(e, dest.c_str());
        if (type == AE_IFREG && hardlink == nullptr)
            result.bytes += static_cast<std::uint64_t>(std::max<la_int64_t>(0, la::archive_entry_size(e)));
        extract(e, name, dest, r.get());
    }
    // Whatever follows the tar end-of-archive blocks (padding) is read, and the fetch stage's
    // verdict on size and SHA-256 arrives with the end of the pipe.
    try {
        while (!pipe.pop().empty()) {
        }
    } catch (...) {
        fetcher.join();
        throw;
    }
    fetcher.join(false);
    throttle.finish(ctx.consumed);
    if (!seen_manifest) throw IntegrityError(fmt::format("{}: archive holds no {}", label, kManifestEntry));

    // Now the symlinks, with libarchive refusing any path that leads through one.
    la::archive_write_disk_set_options(disk.get(), flags | ARCHIVE_EXTRACT_SECURE_SYMLINKS);
    symlinks.replay([&](archive_entry* e) {
        const std::string name = la::archive_entry_pathname(e);
        const Placement pl = place(name, roots.size(), label);
        const std::string dest = roots[pl.root] + "/" + pl.rel;
        la::archive_entry_set_pathname(e, dest.c_str());
        extract(e, name, dest, nullptr);
    });

    // Applies the deferred directory modes and mtimes.
    if (la::archive_write_close(disk.get()) < ARCHIVE_WARN)
        throw RuntimeError(fmt::format("{}: cannot finish extraction: {}", label, la_error(disk.get())));
    for (std::size_t i = 0; i < roots.size(); ++i) {
        if (!root_mtimes[i]) continue;
        const timespec times[2] = {{0, UTIME_OMIT}, *root_mtimes[i]};
        if (::utimensat(AT_FDCWD, roots[i].c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
            add_warning(result, fmt::format("{}: cannot set mtime: {}", roots[i], std::strerror(errno)),
                        dropped_warnings);
    }
    if (dropped_warnings > 0)
        result.warnings.push_back(fmt::format("... and {} more warnings like these", dropped_warnings));
    return result;
}

void check_blob(ByteSource& source, std::uint64_t expected_size, const std::string& expected_sha256,
                const BlobReadOptions& options) {
    ReadCtx ctx(source, expected_size, options.label);
    finish_and_verify(ctx, expected_size, expected_sha256);
}

}  // namespace bartl
