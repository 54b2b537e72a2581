// Backup blob streams (bartl(7) "THE BACKUP BLOB"), each a chain of stages with one job:
//
//   write:  tar writer -> [thread] -> zstd -> [age -r] -> SHA-256 + size -> sink (store writer)
//   read:   source (store reader) -> SHA-256 + size -> [age -d] -> zstd -d (bomb limit)
//           -> [thread] -> secure tar extractor
//
// The stages are tar_writer.hpp, zstd_stage.hpp, age_stage.hpp, hash_stage.hpp and
// tar_extract.hpp; this header composes them, one function per direction. Memory is bounded
// by buffer sizes and the chunk size of streamed sections (invariant 7).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "blob/age_stage.hpp"
#include "blob/entry_rules.hpp"
#include "blob/manifest.hpp"
#include "blob/tar_extract.hpp"
#include "core/error.hpp"
#include "util/byte_stream.hpp"
#include "util/cancel.hpp"

namespace bartl {

/// Progress callback: bytes processed so far, bytes expected (0 = unknown). It may throw
/// (StopRequested) to stop the stream.
using ProgressFn = std::function<void(std::uint64_t done, std::uint64_t total)>;

/// What writing a blob produced.
struct BlobWriteResult {
    std::uint64_t blob_size = 0;            ///< bytes written to the sink
    std::string sha256;                     ///< hex SHA-256 of those bytes
    std::uint64_t files = 0;                ///< entries of the state trees archived (not bartl/, db/)
    std::uint64_t bytes = 0;                ///< regular file content bytes of the state trees
    std::uint64_t stream_bytes = 0;         ///< bytes of the streamed sections (db/)
    std::vector<std::string> changed_while_read;  ///< files whose size/mtime changed while read,
                                                  ///< or that vanished while the tree was walked
    /// Things not backed up as they are, for the operator's log: FIFOs, sockets and device
    /// nodes are skipped (a restore would reject them); metadata libarchive could not read.
    std::vector<std::string> warnings;
    std::uint64_t excluded = 0;  ///< entries left out by manifest.exclude
};

/// A component captured as a stream of unknown length (a database dump), archived as
/// db/SECTION.000000, db/SECTION.000001, ... (TarWriter::add_stream()).
struct StreamComponent {
    std::string kind;     ///< manifest component kind ("postgresql")
    std::string name;     ///< manifest component name ("notes")
    std::string section;  ///< entry name stem below db/ ("notes.dump"), valid_section_name()
    /// Opens the stream when its turn in the capture order comes (so a dump starts only then);
    /// the source's read() returns 0 at its end and throws when its producer failed.
    std::function<std::unique_ptr<ByteSource>()> open;
};

/// Settings of write_blob().
struct BlobWriteOptions {
    int level = 3;    ///< zstd level, 1 to 19
    int threads = 0;  ///< zstd workers: 1 = one thread, streaming; N; 0 = one per core, at most 4
    ProgressFn progress;  ///< content bytes so far and 0 (total unknown)
    /// The non-path components of the manifest, by (kind, name).
    std::vector<StreamComponent> streams;
    /// Bytes of one chunk of a streamed section, held in memory while it is archived.
    std::size_t chunk_bytes = 8u << 20;
    /// Encrypt to these (the blob is then "NAME.tar.zst.age"); std::nullopt = not encrypted.
    std::optional<AgeRecipients> encrypt_to;
    /// Stops child stages (age) between their reads and writes.
    CancelToken cancel = CancelToken::process();
};

/// Writes a backup blob to `sink`: a pax tar whose first entry is bartl/manifest.json
/// (manifest.to_archive_json()), then the components in capture order, manifest.components
/// (when empty: manifest.paths): a "path" component N of manifest.paths under state/N/
/// (TarWriter::add_tree(), with manifest.exclude), any other kind from its StreamComponent;
/// zstd at `options.level` with `options.threads` workers, one frame with a content checksum;
/// age when `options.encrypt_to` is set. The tar writer runs on the calling thread, the
/// compressor (and age's feeding) on a second one. Throws RuntimeError (read errors naming
/// the file, a state path that is missing or not a directory, age failures, sink errors as
/// thrown by `sink`), ConfigError when zstd rejects the level/threads, std::invalid_argument
/// when a component has no path or stream, StopRequested.
BlobWriteResult write_blob(const BackupManifest& manifest, ByteSink& sink, const BlobWriteOptions& options);

/// write_blob() of the state paths only, unencrypted: zstd `level` with `threads` workers.
BlobWriteResult write_blob(const BackupManifest& manifest, ByteSink& sink, int level, int threads,
                           const ProgressFn& progress = {});

/// Optional settings for extract_blob() and check_blob().
struct BlobReadOptions {
    /// Names the blob in error messages, e.g. "backup notes-20261130T030904Z-2.1.0-3f9a0c1d".
    std::string label = "backup blob";
    /// Limit on decompressed tar bytes, so a zstd bomb cannot fill the disk before the
    /// checksum is known. 0 = max(256 MiB, 200 x expected_size). Callers that know the
    /// sidecar's `bytes` should pass a limit derived from it: data that compresses better
    /// than 200:1 (zero-filled preallocated files) would otherwise be refused.
    std::uint64_t max_unpacked = 0;
    /// The blob is age-encrypted: decrypt it with these identity files (`age -d -i`).
    bool encrypted = false;
    std::vector<std::filesystem::path> identities;
    /// The streamed sections to deliver (TarExtractOptions::sections).
    std::map<std::string, SectionConsumer> sections;
    /// TarExtractOptions::on_file: regular-file bytes written to staging so far.
    std::function<void(std::uint64_t bytes)> on_file;
    /// Stops child stages (age) between their reads and writes.
    CancelToken cancel = CancelToken::process();
};

/// Streams a blob from `source`, extracting state/N/... into staging[N] and streamed sections
/// into `options.sections` (TarExtractor: every rejection rule is its), while computing the
/// blob's size and SHA-256; at the end drains `source` and compares them with `expected_size`/
/// `expected_sha256` (hex, either case), throwing IntegrityError on mismatch (the caller
/// discards staging). Returns only after the whole blob verified: commit nothing before.
/// Reading, hashing, decryption and decompression run on a second thread, extraction on the
/// calling one. More than `options.max_unpacked` decompressed bytes is an IntegrityError;
/// so is what age refuses. Staging directories must exist and be empty (else RuntimeError).
/// `progress` gets blob bytes read so far and `expected_size`. Throws RuntimeError for write
/// errors (ENOSPC), age that cannot be started, errors of `source`; std::invalid_argument
/// for an encrypted blob without identities.
BlobExtractResult extract_blob(ByteSource& source, std::uint64_t expected_size, const std::string& expected_sha256,
                               const std::vector<std::filesystem::path>& staging,
                               const ProgressFn& progress = {}, const BlobReadOptions& options = {});

/// Streams a blob and checks size and SHA-256 only (no decryption, decompression nor
/// extraction: it needs no identity). Throws IntegrityError on a mismatch, RuntimeError for
/// errors of `source`.
void check_blob(ByteSource& source, std::uint64_t expected_size, const std::string& expected_sha256,
                const BlobReadOptions& options = {});

}  // namespace bartl
