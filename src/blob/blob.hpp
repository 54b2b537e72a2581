// Backup blob streams: state paths -> POSIX pax tar -> zstd -> SHA-256 -> sink, and back
// (verify while extracting into staging). Memory is bounded by buffer sizes (invariant 7).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "blob/manifest.hpp"
#include "core/error.hpp"
#include "util/byte_stream.hpp"

namespace bartl {

/// Progress callback: bytes of file content processed so far, bytes expected (0 = unknown).
using ProgressFn = std::function<void(std::uint64_t done, std::uint64_t total)>;

/// What writing a blob produced.
struct BlobWriteResult {
    std::uint64_t blob_size = 0;            ///< bytes written to the sink
    std::string sha256;                     ///< hex SHA-256 of those bytes
    std::uint64_t files = 0;                ///< entries archived (excluding bartl/)
    std::uint64_t bytes = 0;                ///< regular file content bytes archived
    std::vector<std::string> changed_while_read;  ///< files whose size/mtime changed while read,
                                                  ///< or that vanished while the tree was walked
    /// Things not backed up as they are, for the operator's log: FIFOs, sockets and device
    /// nodes are skipped (a restore would reject them); metadata libarchive could not read.
    std::vector<std::string> warnings;
    std::uint64_t excluded = 0;  ///< entries left out by manifest.exclude
};

/// True when `rel` (a path relative to a state root, "a/b/temp-1.rdb") matches one of `globs`
/// ([backup] exclude): a glob without '/' matches the last name at any depth, one with '/'
/// matches the whole relative path (fnmatch(3), FNM_PATHNAME). Pure.
bool path_excluded(const std::string& rel, const std::vector<std::string>& globs);

/// Writes a backup blob of `manifest.paths` to `sink`: pax tar whose first entry is
/// bartl/manifest.json (manifest.to_archive_json()), then each path N under state/N/, keeping
/// modes, owners, mtimes, symlinks, hard links, sparse files, xattrs and ACLs; zstd at
/// `level` (1-19) with `threads` zstd workers (1 = on a second thread of ours, streaming; 0 =
/// one per core, at most 4; memory ~5 MiB per worker), one zstd frame with a content
/// checksum. The tar writer and the compressor run on two threads. Symlinks are stored, never followed;
/// hard links are kept within one state path. Entries matching manifest.exclude are left out
/// (a directory with everything below it), and the root's user.bartl.state_id (bartl's own
/// bookkeeping) is never archived. Files that vanish or change while being read
/// (live backups) are listed in changed_while_read, not errors. `progress` gets file content
/// bytes so far and 0 (total unknown). Throws RuntimeError (read errors naming the file, a
/// state path that is missing or not a directory, sink errors as thrown by `sink`),
/// ConfigError when zstd rejects the level/threads.
BlobWriteResult write_blob(const BackupManifest& manifest, ByteSink& sink, int level, int threads,
                           const ProgressFn& progress = {});

/// Why a symlink with `target`, at `link_rel` (its path below a state root, "a/b/link"), may
/// not be restored: absolute, empty, climbing above the root, or ".." after a path component
/// (a chain through a link like "here -> ." could then climb out). std::nullopt when it is
/// fine. write_blob refuses to back up such links; extract_blob rejects them.
std::optional<std::string> symlink_target_problem(const std::string& target, const std::string& link_rel);

/// What extracting a blob found.
struct BlobExtractResult {
    BackupManifest archive_manifest;  ///< parsed bartl/manifest.json
    std::uint64_t files = 0;          ///< entries extracted (excluding bartl/)
    std::uint64_t bytes = 0;          ///< regular file content bytes extracted
    /// Metadata that could not be restored (an ACL or xattr the target filesystem refuses),
    /// and neutralised entries (setuid/setgid bits, security.capability xattrs dropped).
    std::vector<std::string> warnings;
};

/// Optional settings for extract_blob() and check_blob().
struct BlobReadOptions {
    /// Names the blob in error messages, e.g. "backup notes-20261130T030904Z-2.1.0-3f9a0c1d".
    std::string label = "backup blob";
    /// Limit on decompressed tar bytes, so a zstd bomb cannot fill the disk before the
    /// checksum is known. 0 = max(256 MiB, 200 x expected_size). Callers that know the
    /// sidecar's `bytes` should pass a limit derived from it: data that compresses better
    /// than 200:1 (zero-filled preallocated files) would otherwise be refused.
    std::uint64_t max_unpacked = 0;
};

/// Streams a blob from `source`, extracting state/N/... into staging[N], while computing its
/// size and SHA-256; at the end drains `source` and compares them with `expected_size`/
/// `expected_sha256` (hex, either case), throwing IntegrityError on mismatch (the caller
/// discards staging). Secure: rejects (throws IntegrityError naming the entry) absolute
/// paths, "." and ".." components, links leaving their state/N tree, writing through a
/// symlink, device nodes, FIFOs, sockets, entries outside bartl/ state/ (db/ is refused until
/// database dumps exist), state/N with N out of range, duplicate entries, an archive whose
/// first entry is not bartl/manifest.json, and more than `options.max_unpacked` decompressed
/// bytes; setuid/setgid bits of files and security.capability xattrs are dropped. Never
/// writes outside the staging directories. Owners are restored (by name) when running as
/// root. Staging directories must exist and be empty (else RuntimeError). `progress` gets
/// blob bytes read so far and `expected_size`. Throws RuntimeError for write errors (ENOSPC)
/// and for errors of `source`.
BlobExtractResult extract_blob(ByteSource& source, std::uint64_t expected_size, const std::string& expected_sha256,
                               const std::vector<std::filesystem::path>& staging,
                               const ProgressFn& progress = {}, const BlobReadOptions& options = {});

/// Streams a blob and checks size and SHA-256 only (no extraction, no decompression).
/// Throws IntegrityError on a mismatch, RuntimeError for errors of `source`.
void check_blob(ByteSource& source, std::uint64_t expected_size, const std::string& expected_sha256,
                const BlobReadOptions& options = {});

}  // namespace bartl
