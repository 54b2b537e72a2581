// The tar stage of a backup: a POSIX pax archive (libarchive's "restricted pax": plain ustar
// headers, pax records only where needed) of bartl/manifest.json, the state trees under
// state/N/, and streamed sections of unknown length (database dumps) as numbered chunks
// under db/, written to a ByteSink (the compressor, across a thread boundary).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "blob/libarchive.hpp"
#include "util/byte_stream.hpp"

namespace bartl {

/// What the tar writer archived and noticed.
struct TarStats {
    std::uint64_t files = 0;  ///< entries of the state trees (not bartl/, not db/)
    std::uint64_t bytes = 0;  ///< regular file content bytes of the state trees
    std::uint64_t stream_bytes = 0;  ///< bytes of the streamed sections
    std::vector<std::string> changed_while_read;  ///< files that changed or vanished while read
    std::vector<std::string> warnings;            ///< entries skipped or archived imperfectly
    std::uint64_t excluded = 0;                   ///< entries left out by exclude globs
};

/// Called with the content bytes (trees and streams) archived so far; may throw to stop.
using ContentProgress = std::function<void(std::uint64_t bytes)>;

/// A pax archive being written to `out` in 64 KiB blocks. Use it on one thread only: it makes
/// libarchive treat names as raw bytes on the thread that constructed it (RawNames). Errors of
/// `out` are rethrown as they were thrown.
class TarWriter {
public:
    /// Throws RuntimeError when libarchive cannot be loaded or set up.
    explicit TarWriter(ByteSink& out, ContentProgress progress = {});
    ~TarWriter();
    TarWriter(const TarWriter&) = delete;
    TarWriter& operator=(const TarWriter&) = delete;

    /// A regular file `name` (mode 0644, mtime now) holding `content` (bartl/manifest.json).
    void add_file(const std::string& name, const std::string& content);

    /// The directory tree at `root` as `prefix` ("state/0/"): modes, owners, mtimes,
    /// symlinks (never followed), hard links within the tree, sparse files, xattrs and ACLs.
    /// Entries matching `exclude` (path_excluded()) are left out, a directory with all below
    /// it; the root's user.bartl.state_id is never archived; FIFOs, sockets and devices are
    /// skipped with a warning; files that vanish or change while read are recorded in
    /// stats().changed_while_read, not errors. Throws RuntimeError naming the file for read
    /// errors, a root that is missing or not a directory, and a symlink a restore would refuse.
    void add_tree(const std::string& root, const std::string& prefix, const std::vector<std::string>& exclude);

    /// A stream of unknown length (a database dump) as entries db/SECTION.000000,
    /// db/SECTION.000001, ... (chunk_entry_name()) of `chunk_bytes` each but the last, which
    /// holds the rest: one chunk is held in memory at a time (a pax header needs the entry's
    /// size first). An empty stream is one empty chunk; a stream of an exact multiple of
    /// `chunk_bytes` has no empty chunk after the last full one. `cat db/SECTION.*` joins
    /// them again. Returns the stream's bytes. Throws std::invalid_argument for an invalid
    /// section name (valid_section_name()) or chunk size 0, RuntimeError beyond kMaxChunks
    /// chunks, what `in` throws (a dump tool that failed).
    std::uint64_t add_stream(const std::string& section, ByteSource& in, std::size_t chunk_bytes);

    /// Writes the end-of-archive blocks. Call once, last.
    void finish();

    /// What was archived so far.
    const TarStats& stats() const noexcept { return stats_; }

private:
    struct Out;
    void write_data(const void* data, std::size_t n, const std::string& what);
    [[noreturn]] void failed(const std::string& what);
    void report(std::uint64_t extra);

    std::unique_ptr<Out> out_;
    RawNames raw_names_;
    WriteArchive w_;
    ContentProgress progress_;
    TarStats stats_;
    std::vector<char> zeros_;
    std::vector<char> chunk_;
};

}  // namespace bartl
