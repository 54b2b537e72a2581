// The secure extractor, the last stage of a restore: reads a raw tar stream (no filters: zstd
// is its own stage) and extracts state/N/... into staging directory N, bartl/manifest.json
// into memory, and streamed sections (db/SECTION.NNNNNN) into consumers the caller supplies.
// Every entry is validated by our own code before libarchive's disk writer sees it:
// libarchive's SECURE_NOABSOLUTEPATHS cannot be used because names are rewritten to absolute
// staging paths, so the containment checks here keep a hostile archive inside staging.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "blob/manifest.hpp"
#include "util/byte_stream.hpp"

namespace bartl {

/// What extracting a blob found.
struct BlobExtractResult {
    BackupManifest archive_manifest;  ///< parsed bartl/manifest.json
    std::uint64_t files = 0;          ///< entries extracted (excluding bartl/ and db/)
    std::uint64_t bytes = 0;          ///< regular file content bytes extracted (excluding db/)
    /// Metadata that could not be restored (an ACL or xattr the target filesystem refuses),
    /// and neutralised entries (setuid/setgid bits, security.capability xattrs dropped).
    std::vector<std::string> warnings;
    /// Bytes delivered per streamed section (SectionConsumer), by section name.
    std::map<std::string, std::uint64_t> section_bytes;
};

/// Where one streamed section of the blob goes (a database dump on its way to a restore tool).
/// Its bytes arrive before the blob's SHA-256 is known: commit what the consumer built only
/// once extract_blob() has returned.
struct SectionConsumer {
    ByteSink* sink = nullptr;      ///< gets the section's bytes, chunk after chunk, in order
    std::function<void()> finish;  ///< called once after its last chunk (may throw); optional
};

/// Settings of a TarExtractor.
struct TarExtractOptions {
    std::string label = "backup blob";  ///< names the blob in messages
    /// The streamed sections this restore takes, by section name ("notes.dump"): db/ entries
    /// of any other section are refused, and so is a blob without one of these.
    std::map<std::string, SectionConsumer> sections;
    /// Called for every piece of input read (progress reports, cancellation); may throw.
    std::function<void()> on_input;
    /// Called after each block of file content written to staging, with the content bytes
    /// written so far (db/ sections not counted); may throw.
    std::function<void(std::uint64_t bytes)> on_file;
};

/// Extraction of one tar stream into staging. Rejects (IntegrityError naming the entry):
/// absolute paths, "." and ".." components, links leaving their state/N tree, writing through
/// a symlink, device nodes, FIFOs, sockets, entries outside bartl/, state/ and db/, state/N
/// with N out of range, duplicate entries, an archive whose first entry is not
/// bartl/manifest.json; db/ entries of a section nobody asked for, not named
/// db/SECTION.NNNNNN, not regular files, out of order, with gaps or duplicates, or a section
/// appearing twice. Setuid/setgid bits of files and security.capability xattrs are dropped.
/// Never writes outside the staging directories. Owners are restored (by name) when running
/// as root. Symlinks are created last, by finish(), so none exists in staging while the other
/// entries are written.
class TarExtractor {
public:
    /// `staging` must exist and be empty (RuntimeError otherwise).
    TarExtractor(const std::vector<std::filesystem::path>& staging, TarExtractOptions options);
    ~TarExtractor();
    TarExtractor(const TarExtractor&) = delete;
    TarExtractor& operator=(const TarExtractor&) = delete;

    /// Reads and extracts entries up to the end-of-archive blocks (what follows them stays
    /// in `tar`). Calls each section's finish() after its last chunk. Throws IntegrityError
    /// (hostile or corrupt archive, a requested section missing), RuntimeError (ENOSPC, EIO),
    /// what `tar` or a consumer throws.
    void read_entries(ByteSource& tar);

    /// Creates the symlinks set aside, applies directory modes and mtimes, and returns what
    /// was extracted. Throws IntegrityError (no bartl/manifest.json, a hostile symlink),
    /// RuntimeError.
    BlobExtractResult finish();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace bartl
