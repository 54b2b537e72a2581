// archive_read_disk walks the state (metadata, xattrs, ACLs, sparse maps) and the pax writer
// turns each entry into tar; the bytes leave through a callback into the ByteSink.
#include "blob/tar_writer.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <stdexcept>
#include <string_view>

#include <fmt/format.h>

#include "blob/entry_rules.hpp"
#include "core/error.hpp"
#include "core/marker.hpp"

namespace bartl {

namespace {

namespace stdfs = std::filesystem;

constexpr std::size_t kBlock = 64 * 1024;

struct ResolverFree {
    void operator()(archive_entry_linkresolver* r) const noexcept { la::archive_entry_linkresolver_free(r); }
};
using Resolver = std::unique_ptr<archive_entry_linkresolver, ResolverFree>;

/// archive_read_next_header2 on a disk reader, in a frame of its own: libarchive 3.6.2 leaks a
/// message inside it when the last entries of a walk vanished, and tests/lsan.supp and
/// tests/valgrind.supp name this frame to suppress exactly that (never bartl's own frees).
[[gnu::noinline]] int next_disk_entry(archive* disk, archive_entry* entry) {
    const int r = la::archive_read_next_header2(disk, entry);
    asm volatile("" ::: "memory");  // no tail call: the frame stays in the stack the checkers see
    return r;
}

}  // namespace

/// The archive's way out. What the sink throws cannot cross libarchive (C): it is kept here
/// and rethrown once libarchive reports the failed write.
struct TarWriter::Out {
    explicit Out(ByteSink& s) : sink(s) {}
    ByteSink& sink;
    std::exception_ptr error;

    static la_ssize_t callback(archive* a, void* p, const void* buf, size_t n) {
        auto* o = static_cast<Out*>(p);
        try {
            o->sink.write(buf, n);
            return static_cast<la_ssize_t>(n);
        } catch (...) {
            o->error = std::current_exception();
            la::archive_set_error(a, ECANCELED, "the next stage of the stream stopped");
            return -1;
        }
    }
};

TarWriter::TarWriter(ByteSink& out, ContentProgress progress)
    : out_(std::make_unique<Out>(out)), progress_(std::move(progress)) {
    la::load();
    w_.reset(la::archive_write_new());
    if (!w_) throw RuntimeError("cannot allocate a libarchive writer");
    if (la::archive_write_set_format_pax_restricted(w_.get()) != ARCHIVE_OK)
        throw RuntimeError(fmt::format("cannot set up the pax writer: {}", la_error(w_.get())));
    la::archive_write_set_bytes_per_block(w_.get(), kBlock);
    la::archive_write_set_bytes_in_last_block(w_.get(), 1);
    if (la::archive_write_open(w_.get(), out_.get(), nullptr, &Out::callback, nullptr) != ARCHIVE_OK)
        failed("cannot start the backup blob");
}

TarWriter::~TarWriter() = default;

void TarWriter::failed(const std::string& what) {
    if (out_->error) std::rethrow_exception(out_->error);
    throw RuntimeError(fmt::format("{}: {}", what, la_error(w_.get())));
}

void TarWriter::write_data(const void* data, std::size_t n, const std::string& what) {
    // archive_write_data returns less than n only when the entry's declared size is reached
    // (the file grew while read): the rest is dropped, and the size check reports the change.
    if (n > 0 && la::archive_write_data(w_.get(), data, n) < 0) failed(what);
}

void TarWriter::report(std::uint64_t extra) {
    if (progress_) progress_(stats_.bytes + stats_.stream_bytes + extra);
}

void TarWriter::add_file(const std::string& name, const std::string& content) {
    Entry e(la::archive_entry_new());
    la::archive_entry_set_pathname(e.get(), name.c_str());
    la::archive_entry_set_filetype(e.get(), AE_IFREG);
    la::archive_entry_set_perm(e.get(), 0644);
    la::archive_entry_set_size(e.get(), static_cast<la_int64_t>(content.size()));
    la::archive_entry_set_mtime(e.get(), std::time(nullptr), 0);
    const std::string what = "cannot write " + name;
    if (la::archive_write_header(w_.get(), e.get()) < ARCHIVE_WARN) failed(what);
    write_data(content.data(), content.size(), what);
    if (la::archive_write_finish_entry(w_.get()) < ARCHIVE_WARN) failed(what);
}

void TarWriter::add_tree(const std::string& root_in, const std::string& prefix, const std::vector<std::string>& exclude) {
    archive* w = w_.get();
    std::string root = stdfs::path(root_in).lexically_normal().string();
    while (root.size() > 1 && root.back() == '/') root.pop_back();

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
    for (;;) {
        la::archive_entry_clear(entry.get());
        int r = next_disk_entry(disk.get(), entry.get());
        if (r == ARCHIVE_EOF) break;
        if (r == ARCHIVE_WARN || r == ARCHIVE_FAILED) {
            // Live apps delete temporary files while we walk: libarchive reports those as
            // ENOENT, and the backup goes on without them.
            if (la::archive_errno(disk.get()) == ENOENT) {
                stats_.changed_while_read.push_back(la_error(disk.get()));
                if (r == ARCHIVE_FAILED) continue;
            } else if (r == ARCHIVE_WARN) {
                stats_.warnings.push_back(la_error(disk.get()));
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
            ++stats_.excluded;
            continue;
        }
        if (la::archive_read_disk_can_descend(disk.get())) la::archive_read_disk_descend(disk.get());

        const mode_t type = la::archive_entry_filetype(entry.get());
        if (const char* kind = unsupported_kind(type)) {
            stats_.warnings.push_back(fmt::format("{}: {} not backed up (a restore would refuse it)", src, kind));
            continue;
        }
        if (rel.empty()) drop_xattr(entry.get(), kStateIdXattr);  // the live state's, not the backup's
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

        const std::string what = fmt::format("cannot archive {}", src);
        r = la::archive_write_header(w, e);
        if (r < ARCHIVE_WARN) failed(what);
        if (r == ARCHIVE_WARN) {
            // A non-ASCII name "can't be translated" from the C locale: stored as raw bytes,
            // as intended (see RawNames); anything else is worth a warning.
            const std::string why = la_error(w);
            if (why.rfind("Can't translate", 0) != 0) stats_.warnings.push_back(fmt::format("{}: {}", src, why));
        }
        ++stats_.files;

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
                    if (zeros_.empty()) zeros_.assign(kBlock, 0);
                    for (auto gap = off - pos; gap > 0;) {
                        auto chunk = static_cast<std::size_t>(std::min<std::int64_t>(gap, kBlock));
                        write_data(zeros_.data(), chunk, what);
                        gap -= static_cast<std::int64_t>(chunk);
                    }
                    pos = off;
                }
                write_data(buf, len, what);
                pos += static_cast<std::int64_t>(len);
                report(static_cast<std::uint64_t>(pos));
            }
            stats_.bytes += static_cast<std::uint64_t>(size);
            struct stat after {};
            if (vanished || ::lstat(src.c_str(), &after) != 0 || after.st_size != size ||
                after.st_mtim.tv_sec != mtime || after.st_mtim.tv_nsec != mtime_ns)
                stats_.changed_while_read.push_back(src);
        }
        // The pax writer pads an entry that came up short with zeros, keeping the archive valid.
        if (la::archive_write_finish_entry(w) < ARCHIVE_WARN) failed(what);
    }
    la::archive_read_close(disk.get());
}

std::uint64_t TarWriter::add_stream(const std::string& section, ByteSource& in, std::size_t chunk_bytes) {
    if (!valid_section_name(section))
        throw std::invalid_argument(fmt::format("invalid streamed section name \"{}\"", section));
    if (chunk_bytes == 0) throw std::invalid_argument("chunk size 0");
    chunk_.resize(chunk_bytes);
    std::uint64_t total = 0;
    bool at_end = false;
    for (std::uint64_t index = 0; !at_end; ++index) {
        std::size_t fill = 0;
        while (fill < chunk_bytes) {
            const std::size_t n = in.read(chunk_.data() + fill, chunk_bytes - fill);
            if (n == 0) {
                at_end = true;
                break;
            }
            fill += n;
        }
        // An exact multiple of the chunk size ends with its last full chunk; only an empty
        // stream is an empty chunk, so every section has a .000000 entry.
        if (fill == 0 && index > 0) break;
        if (index >= kMaxChunks)
            throw RuntimeError(fmt::format("cannot archive the stream {}: more than {} chunks of {} bytes", section,
                                           kMaxChunks, chunk_bytes));
        const std::string name = chunk_entry_name(section, index);
        const std::string what = "cannot write " + name;
        Entry e(la::archive_entry_new());
        la::archive_entry_set_pathname(e.get(), name.c_str());
        la::archive_entry_set_filetype(e.get(), AE_IFREG);
        la::archive_entry_set_perm(e.get(), 0600);
        la::archive_entry_set_size(e.get(), static_cast<la_int64_t>(fill));
        la::archive_entry_set_mtime(e.get(), std::time(nullptr), 0);
        if (la::archive_write_header(w_.get(), e.get()) < ARCHIVE_WARN) failed(what);
        write_data(chunk_.data(), fill, what);
        if (la::archive_write_finish_entry(w_.get()) < ARCHIVE_WARN) failed(what);
        total += fill;
        stats_.stream_bytes += fill;
        report(0);
    }
    // The chunk buffer is the largest allocation of a backup: give it back between streams.
    std::vector<char>().swap(chunk_);
    return total;
}

void TarWriter::finish() {
    if (la::archive_write_close(w_.get()) != ARCHIVE_OK) failed("cannot finish the backup blob");
}

}  // namespace bartl
