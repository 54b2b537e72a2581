// Backup blob streams: state paths -> POSIX pax tar -> zstd -> SHA-256 -> sink, and back
// (verify while extracting into staging). Memory is bounded by buffer sizes (invariant 7).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "blob/manifest.hpp"
#include "store/store.hpp"

namespace bartl {

/// Progress callback: bytes of file content processed so far, bytes expected (0 = unknown).
using ProgressFn = std::function<void(std::uint64_t done, std::uint64_t total)>;

/// What writing a blob produced.
struct BlobWriteResult {
    std::uint64_t blob_size = 0;            ///< bytes written to the sink
    std::string sha256;                     ///< hex SHA-256 of those bytes
    std::uint64_t files = 0;                ///< entries archived (excluding bartl/)
    std::uint64_t bytes = 0;                ///< regular file content bytes archived
    std::vector<std::string> changed_while_read;  ///< files whose size/mtime changed while read
};

/// Writes a backup blob of `manifest.paths` to `sink`: pax tar whose first entry is
/// bartl/manifest.json (manifest.to_archive_json()), then each path N under state/N/, keeping
/// modes, owners, mtimes, symlinks, hard links, sparse files, xattrs and ACLs; zstd at
/// `level` with `threads` workers (0 = one per core). Throws RuntimeError (read errors
/// naming the file, sink errors).
BlobWriteResult write_blob(const BackupManifest& manifest, ByteSink& sink, int level, int threads,
                           const ProgressFn& progress = {});

/// What extracting a blob found.
struct BlobExtractResult {
    BackupManifest archive_manifest;  ///< parsed bartl/manifest.json
    std::uint64_t files = 0;
    std::uint64_t bytes = 0;
};

/// Streams a blob from `source`, extracting state/N/... into staging[N], while computing its
/// size and SHA-256; at the end compares them with `expected_size`/`expected_sha256` and
/// throws IntegrityError on mismatch (the caller discards staging). Secure: rejects (throws
/// IntegrityError naming the entry) absolute paths, "..", links leaving the tree, device
/// nodes, FIFOs, sockets, entries outside bartl/ state/ db/, state/N with N out of range, and
/// setuid/setgid bits are cleared. Never writes outside the staging directories. Staging
/// directories must exist and be empty. Throws RuntimeError for write errors (ENOSPC).
BlobExtractResult extract_blob(ByteSource& source, std::uint64_t expected_size, const std::string& expected_sha256,
                               const std::vector<std::filesystem::path>& staging,
                               const ProgressFn& progress = {});

/// Streams a blob and checks size and SHA-256 only (no extraction). Throws IntegrityError.
void check_blob(ByteSource& source, std::uint64_t expected_size, const std::string& expected_sha256);

}  // namespace bartl
