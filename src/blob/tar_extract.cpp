#include "blob/tar_extract.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <set>
#include <string_view>

#include <fmt/format.h>

#include "blob/entry_rules.hpp"
#include "blob/libarchive.hpp"
#include "blob/pipe.hpp"
#include "core/error.hpp"

namespace bartl {

namespace {

namespace stdfs = std::filesystem;

constexpr const char* kManifestEntry = "bartl/manifest.json";
constexpr std::uint64_t kMaxManifestBytes = 1024 * 1024;
constexpr std::size_t kMaxWarnings = 100;
constexpr std::size_t kReadBlock = 64 * 1024;

/// Where an archive entry goes.
struct Placement {
    std::size_t root = 0;  ///< N of state/N
    std::string rel;       ///< path below state/N/ without trailing '/', "" for the root itself
};

/// Validates an archive name ("state/N/rel[/]") and returns where it belongs. Throws
/// IntegrityError naming the entry for anything else.
Placement place(const std::string& name, std::size_t roots, const std::string& label, const char* what = "entry") {
    auto reject = [&](const std::string& why) -> IntegrityError {
        return IntegrityError(fmt::format("{}: rejected {} \"{}\": {}", label, what, name, why));
    };
    if (name.empty()) throw reject("empty name");
    if (name.front() == '/') throw reject("absolute path");
    auto parts = split_path(name);
    if (parts.size() > 1 && parts.back().empty()) parts.pop_back();  // a directory's trailing '/'
    for (auto p : parts) {
        if (p.empty()) throw reject("empty path component");
        if (p == "..") throw reject("\"..\" component");
        if (p == ".") throw reject("\".\" component");
    }
    if (parts[0] != "state" || parts.size() < 2)
        throw reject("outside state/ (expected bartl/manifest.json, state/N/... or db/NAME.NNNNNN)");
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
    return pl;
}

/// A symlink target must be relative and, read lexically from the link's directory, stay
/// inside its state/N tree. (Links through other links are covered by SECURE_SYMLINKS at
/// extraction time: nothing is ever written through a symlink.)
void check_symlink(const std::string& name, const Placement& pl, const std::string& target, const std::string& label) {
    if (const auto why = symlink_target_problem(target, pl.rel))
        throw IntegrityError(fmt::format("{}: rejected symlink \"{}\" -> \"{}\": {}", label, name, target, *why));
}

bool is_resource_error(int err) {
    return err == ENOSPC || err == EDQUOT || err == EIO || err == EROFS || err == ENOMEM || err == EMFILE ||
           err == ENFILE;
}

/// A failed archive_write_disk call: a full or broken disk is a RuntimeError (retry later);
/// anything else means the entry itself was unacceptable (e.g. writing through a symlink).
[[noreturn]] void extract_failed(archive* disk, const std::string& label, const std::string& entry) {
    const int err = la::archive_errno(disk);
    if (err == ENOSPC || err == EDQUOT)  // the caller knows which disk and adds its sizes
        throw DiskFull(fmt::format("{}: cannot extract \"{}\": {}: {}", label, entry, la_error(disk),
                                   std::strerror(err)));
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
    if (!drop_xattr(e, "security.capability")) return;
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

/// The tar stream's way in, as a libarchive read callback. An exception of the source cannot
/// cross libarchive (C): it is kept and rethrown when libarchive reports the failed read.
struct Input {
    ByteSource* source = nullptr;
    PipeSource* pipe = nullptr;  // the same source, when it can lend its buffers
    std::vector<char> buf;
    const std::function<void()>* on_input = nullptr;
    std::exception_ptr error;

    static la_ssize_t callback(archive* a, void* p, const void** out) {
        auto* in = static_cast<Input*>(p);
        try {
            std::size_t n = 0;
            if (in->pipe != nullptr) {
                const auto chunk = in->pipe->next();
                *out = chunk.data();
                n = chunk.size();
            } else {
                n = in->source->read(in->buf.data(), in->buf.size());
                *out = in->buf.data();
            }
            if (*in->on_input) (*in->on_input)();
            return static_cast<la_ssize_t>(n);
        } catch (...) {
            in->error = std::current_exception();
            la::archive_set_error(a, EIO, "reading the backup blob failed");
            return -1;
        }
    }
};

}  // namespace

struct TarExtractor::Impl {
    TarExtractOptions options;
    std::vector<std::string> roots;
    int flags = 0;
    WriteArchive disk;
    DeferredSymlinks symlinks;
    // libarchive sets an existing directory's mtime at once (not deferred like the ones it
    // creates), so extracting its children would overwrite it: staging roots get theirs last.
    std::vector<std::optional<timespec>> root_mtimes;
    BlobExtractResult result;
    std::uint64_t dropped_warnings = 0;
    std::uint64_t file_bytes_written = 0;  // content written to staging so far (TarExtractOptions::on_file)
    bool seen_manifest = false;
    std::string last_entry;
    Input input;
    // Streamed sections: the one being read, its next chunk number, the ones already done.
    std::string section;
    std::uint64_t next_chunk = 0;
    std::set<std::string> sections_done;
    std::vector<char> data_buf;

    Impl(const std::vector<stdfs::path>& staging, TarExtractOptions o)
        : options(std::move(o)), roots(prepare_staging(staging)),
          symlinks(roots.empty() ? std::string("/tmp") : roots.front()), root_mtimes(roots.size()) {
        disk.reset(la::archive_write_disk_new());
        if (!disk) throw RuntimeError("cannot allocate a libarchive disk writer");
        flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_XATTR |
                ARCHIVE_EXTRACT_SECURE_NODOTDOT;
        if (::geteuid() == 0) flags |= ARCHIVE_EXTRACT_OWNER;
        // No symlink exists in staging until the deferred ones are created at the end.
        la::archive_write_disk_set_options(disk.get(), flags);
        // By name: a restore on another host maps "notes" to that host's uid for "notes".
        la::archive_write_disk_set_standard_lookup(disk.get());
        for (const auto& [name, c] : options.sections)
            if (!valid_section_name(name) || c.sink == nullptr)
                throw std::invalid_argument(fmt::format("invalid streamed section consumer \"{}\"", name));
    }

    const std::string& label() const { return options.label; }

    /// Appends a warning, keeping at most kMaxWarnings (memory bounded by configuration, not by
    /// the archive: a hostile one could carry millions of setuid files).
    void warn(std::string text) {
        if (result.warnings.size() < kMaxWarnings)
            result.warnings.push_back(std::move(text));
        else
            ++dropped_warnings;
    }

    /// A failed libarchive read: the exception of the stage feeding it when that caused it, else
    /// corruption of the archive (IntegrityError naming the last entry read).
    [[noreturn]] void read_failed(archive* a, const std::string& entry) {
        if (input.error) std::rethrow_exception(input.error);
        if (entry.empty())
            throw IntegrityError(fmt::format("{}: corrupt archive before its first entry: {}", label(), la_error(a)));
        throw IntegrityError(fmt::format("{}: corrupt archive at entry \"{}\": {}", label(), entry, la_error(a)));
    }

    /// Writes one validated entry (pathname already rewritten to `dest`) and its data.
    void extract(archive_entry* e, const std::string& name, const std::string& dest, archive* data) {
        // Duplicates could replace an entry checked before: a non-directory never lands on an
        // existing path (staging starts empty), a directory only on a directory.
        const mode_t there = existing_type(dest);
        const bool is_dir = la::archive_entry_filetype(e) == AE_IFDIR && la::archive_entry_hardlink(e) == nullptr;
        if (there == kBelowNonDirectory)
            throw IntegrityError(fmt::format(
                "{}: rejected entry \"{}\": an earlier entry is a file where this one needs a directory", label(),
                name));
        if (there != 0 && !(is_dir && there == S_IFDIR))
            throw IntegrityError(fmt::format(
                "{}: rejected {} \"{}\": the path already exists (the entry appears twice, or an earlier entry "
                "was written below it)",
                label(), la::archive_entry_filetype(e) == AE_IFLNK ? "symlink" : "entry", name));
        int rc = la::archive_write_header(disk.get(), e);
        if (rc < ARCHIVE_WARN) extract_failed(disk.get(), label(), name);
        if (rc == ARCHIVE_WARN) warn(fmt::format("{}: {}", name, la_error(disk.get())));
        while (data != nullptr) {
            const void* buf = nullptr;
            size_t len = 0;
            la_int64_t off = 0;
            rc = la::archive_read_data_block(data, &buf, &len, &off);
            if (rc == ARCHIVE_EOF) break;
            if (rc < ARCHIVE_WARN) read_failed(data, name);
            // write_disk reports a failed write(2) (ENOSPC, EIO) as ARCHIVE_WARN, not FATAL:
            // anything but OK here means the file on disk is not the file in the archive.
            if (la::archive_write_data_block(disk.get(), buf, len, off) != ARCHIVE_OK)
                extract_failed(disk.get(), label(), name);
            file_bytes_written += len;
            if (options.on_file) options.on_file(file_bytes_written);
        }
        rc = la::archive_write_finish_entry(disk.get());
        if (rc < ARCHIVE_WARN) extract_failed(disk.get(), label(), name);
        if (rc == ARCHIVE_WARN) warn(fmt::format("{}: {}", name, la_error(disk.get())));
        ++result.files;
    }

    void read_manifest(archive* r, archive_entry* e, const std::string& name, bool first) {
        if (!first) throw IntegrityError(fmt::format("{}: {} is not the first entry", label(), kManifestEntry));
        if (la::archive_entry_filetype(e) != AE_IFREG || la::archive_entry_hardlink(e) != nullptr ||
            la::archive_entry_size(e) < 0 || static_cast<std::uint64_t>(la::archive_entry_size(e)) > kMaxManifestBytes)
            throw IntegrityError(fmt::format("{}: {} is not a regular file of at most 1 MiB", label(), kManifestEntry));
        std::string text;
        char buf[16384];
        for (;;) {
            la_ssize_t n = la::archive_read_data(r, buf, sizeof buf);
            if (n < 0) read_failed(r, name);
            if (n == 0) break;
            text.append(buf, static_cast<std::size_t>(n));
        }
        try {
            result.archive_manifest = BackupManifest::from_json(text);
        } catch (const std::exception& ex) {  // whatever the parser says: this backup is bad
            throw IntegrityError(fmt::format("{}: {}: {}", label(), kManifestEntry, ex.what()));
        }
        seen_manifest = true;
    }

    /// The current streamed section has ended: its consumer hears so.
    void end_section() {
        if (section.empty()) return;
        const auto& c = options.sections.at(section);
        sections_done.insert(section);
        section.clear();
        if (c.finish) c.finish();
    }

    /// A db/ entry: the next chunk of a requested section, delivered to its consumer.
    void read_chunk(archive* r, archive_entry* e, const std::string& name) {
        auto reject = [&](const std::string& why) -> IntegrityError {
            return IntegrityError(fmt::format("{}: rejected entry \"{}\": {}", label(), name, why));
        };
        const auto chunk = parse_chunk_entry_name(name);
        if (!chunk) throw reject("a db/ entry must be named db/NAME.NNNNNN (a chunk of a database dump)");
        const auto it = options.sections.find(chunk->section);
        if (it == options.sections.end())
            throw reject(fmt::format("no database of this restore is stored as db/{}.*", chunk->section));
        if (la::archive_entry_filetype(e) != AE_IFREG || la::archive_entry_hardlink(e) != nullptr)
            throw reject("a dump chunk must be a regular file");
        if (chunk->section != section) {
            end_section();
            if (sections_done.count(chunk->section))
                throw reject(fmt::format("db/{}.* appears a second time, after other entries", chunk->section));
            section = chunk->section;
            next_chunk = 0;
        }
        if (chunk->index != next_chunk)
            throw reject(chunk->index < next_chunk
                             ? fmt::format("chunk {} of db/{}.* appears again", chunk->index, section)
                             : fmt::format("expected chunk {} of db/{}.* (chunks missing or out of order)", next_chunk,
                                           section));
        ++next_chunk;
        if (data_buf.empty()) data_buf.resize(kReadBlock);
        auto& total = result.section_bytes[section];
        for (;;) {
            // archive_read_data fills holes of a sparse entry with zeros: the consumer gets the
            // bytes `tar -x` would write.
            const la_ssize_t n = la::archive_read_data(r, data_buf.data(), data_buf.size());
            if (n < 0) read_failed(r, name);
            if (n == 0) break;
            it->second.sink->write(data_buf.data(), static_cast<std::size_t>(n));
            total += static_cast<std::uint64_t>(n);
        }
    }

    void read_entries(ByteSource& tar) {
        input.source = &tar;
        input.pipe = dynamic_cast<PipeSource*>(&tar);
        if (input.pipe == nullptr) input.buf.resize(kReadBlock);
        input.on_input = &options.on_input;
        const RawNames raw_names;
        ReadArchive r(la::archive_read_new());
        if (!r) throw RuntimeError("cannot allocate a libarchive reader");
        // Only tar, no filters: decompression is a stage of its own, and less for a hostile
        // blob to reach.
        la::archive_read_support_format_tar(r.get());
        if (la::archive_read_open(r.get(), &input, nullptr, &Input::callback, nullptr) != ARCHIVE_OK)
            read_failed(r.get(), "");

        for (bool first = true;; first = false) {
            archive_entry* e = nullptr;
            int rc = la::archive_read_next_header(r.get(), &e);
            if (rc == ARCHIVE_EOF) break;
            if (rc < ARCHIVE_WARN) read_failed(r.get(), last_entry);
            const char* pn = la::archive_entry_pathname(e);
            if (pn == nullptr) throw IntegrityError(fmt::format("{}: entry after \"{}\" has no name", label(), last_entry));
            const std::string name = pn;
            last_entry = name;

            if (name == kManifestEntry) {
                read_manifest(r.get(), e, name, first);
                continue;
            }
            if (first)
                throw IntegrityError(fmt::format("{}: first entry is \"{}\", expected {}: not a bartl backup",
                                                 label(), name, kManifestEntry));
            if (name.rfind("db/", 0) == 0) {
                // The directory itself, as `tar -c db` writes it by hand, holds nothing.
                if (name == "db/" && la::archive_entry_filetype(e) == AE_IFDIR) continue;
                read_chunk(r.get(), e, name);
                continue;
            }
            end_section();
            extract_state_entry(r.get(), e, name);
        }
        end_section();
        for (const auto& [name, c] : options.sections)
            if (!sections_done.count(name))
                throw IntegrityError(fmt::format("{}: the archive holds no db/{}.* entries", label(), name));
    }

    void extract_state_entry(archive* r, archive_entry* e, const std::string& name) {
        const Placement pl = place(name, roots.size(), label());
        const std::string& root = roots[pl.root];
        const std::string dest = pl.rel.empty() ? root : root + "/" + pl.rel;

        const mode_t type = la::archive_entry_filetype(e);
        const char* hardlink = la::archive_entry_hardlink(e);
        const char* symlink = la::archive_entry_symlink(e);
        if (hardlink != nullptr) {
            if (symlink != nullptr || (type != AE_IFREG && type != 0))
                throw IntegrityError(fmt::format("{}: rejected entry \"{}\": malformed hard link", label(), name));
            const Placement target = place(hardlink, roots.size(), label(), "hard link target");
            const std::string target_path = roots[target.root] + "/" + target.rel;
            // No symlink exists in staging yet, so this names the file itself.
            if (target.root != pl.root || target.rel.empty() || existing_type(target_path) != S_IFREG)
                throw IntegrityError(fmt::format(
                    "{}: rejected hard link \"{}\" -> \"{}\": target is not a file extracted earlier in the same "
                    "state/{}/ tree",
                    label(), name, hardlink, pl.root));
            la::archive_entry_set_hardlink(e, target_path.c_str());
        } else if (type == AE_IFLNK) {
            if (pl.rel.empty())
                throw IntegrityError(
                    fmt::format("{}: rejected entry \"{}\": a state root must be a directory", label(), name));
            check_symlink(name, pl, symlink != nullptr ? symlink : "", label());
        } else if (type == AE_IFREG) {
            if (pl.rel.empty())
                throw IntegrityError(
                    fmt::format("{}: rejected entry \"{}\": a state root must be a directory", label(), name));
        } else if (type != AE_IFDIR) {
            const char* kind = unsupported_kind(type);
            throw IntegrityError(fmt::format("{}: rejected entry \"{}\": {} not allowed in a backup", label(), name,
                                             kind != nullptr ? kind : "unknown file type"));
        }
        std::vector<std::string> neutralised;
        neutralise(e, name, neutralised);
        for (auto& w : neutralised) warn(std::move(w));
        if (pl.rel.empty() && la::archive_entry_mtime_is_set(e))
            root_mtimes[pl.root] = timespec{la::archive_entry_mtime(e), la::archive_entry_mtime_nsec(e)};
        if (type == AE_IFLNK && hardlink == nullptr) {
            symlinks.add(e);  // by its archive name; placed again when replayed
            return;
        }
        la::archive_entry_set_pathname(e, dest.c_str());
        if (type == AE_IFREG && hardlink == nullptr) {
            result.bytes += static_cast<std::uint64_t>(std::max<la_int64_t>(0, la::archive_entry_size(e)));
        }
        extract(e, name, dest, r);
    }

    BlobExtractResult finish() {
        if (!seen_manifest) throw IntegrityError(fmt::format("{}: archive holds no {}", label(), kManifestEntry));
        const RawNames raw_names;
        // Now the symlinks, with libarchive refusing any path that leads through one.
        la::archive_write_disk_set_options(disk.get(), flags | ARCHIVE_EXTRACT_SECURE_SYMLINKS);
        symlinks.replay([&](archive_entry* e) {
            const std::string name = la::archive_entry_pathname(e);
            const Placement pl = place(name, roots.size(), label());
            const std::string dest = roots[pl.root] + "/" + pl.rel;
            la::archive_entry_set_pathname(e, dest.c_str());
            extract(e, name, dest, nullptr);
        });
        // Applies the deferred directory modes and mtimes.
        if (la::archive_write_close(disk.get()) < ARCHIVE_WARN)
            throw RuntimeError(fmt::format("{}: cannot finish extraction: {}", label(), la_error(disk.get())));
        for (std::size_t i = 0; i < roots.size(); ++i) {
            if (!root_mtimes[i]) continue;
            const timespec times[2] = {{0, UTIME_OMIT}, *root_mtimes[i]};
            if (::utimensat(AT_FDCWD, roots[i].c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
                warn(fmt::format("{}: cannot set mtime: {}", roots[i], std::strerror(errno)));
        }
        if (dropped_warnings > 0)
            result.warnings.push_back(fmt::format("... and {} more warnings like these", dropped_warnings));
        return std::move(result);
    }
};

TarExtractor::TarExtractor(const std::vector<stdfs::path>& staging, TarExtractOptions options) {
    la::load();
    impl_ = std::make_unique<Impl>(staging, std::move(options));
}

TarExtractor::~TarExtractor() = default;

void TarExtractor::read_entries(ByteSource& tar) { impl_->read_entries(tar); }

BlobExtractResult TarExtractor::finish() { return impl_->finish(); }

}  // namespace bartl
