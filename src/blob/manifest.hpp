// The backup manifest: the sidecar "<blob>.json" (bartl(7) "The backup blob") and the
// in-archive "bartl/manifest.json". Pure: JSON only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/marker.hpp"

namespace bartl {

/// One component of a backup: {"kind": "path", "name": "/var/lib/notes"}, later "postgresql".
struct ManifestComponent {
    std::string kind;
    std::string name;
};

/// Manifest keys. The sidecar has all of them; the in-archive copy lacks `blob` (unknown
/// while the archive is written) and the counts. `reason`, `writer` and `migrations` are
/// optional when read (sidecars of older bartl lack them).
struct BackupManifest {
    int format = 1;
    std::string app;
    std::string version;       ///< state version at backup time (SemVer text)
    std::string created;       ///< RFC 3339 UTC
    std::string host;
    std::string id;            ///< short unique id (8 hex chars), last part of the blob name
    std::string blob_name;     ///< blob.name
    std::uint64_t blob_size = 0;  ///< blob.size, bytes
    std::string blob_sha256;   ///< blob.sha256, 64 lower-case hex chars
    std::string compression;   ///< "zstd:3"
    std::optional<std::string> encryption;  ///< null or "age"
    std::vector<ManifestComponent> components;
    std::vector<std::string> paths;  ///< state/N/ in the archive holds paths[N]
    std::uint64_t files = 0;   ///< regular files + dirs + links in the archive (excluding bartl/)
    std::uint64_t bytes = 0;   ///< bytes of regular file content in the archive
    /// Why it was taken: "scheduled", "manual", "pre-migration", "stop"... ("" in sidecars of
    /// bartl before reasons were recorded).
    std::string reason;
    /// The state that wrote it: its state ID and writer generation ("" / 0 when unknown, i.e.
    /// written by bartl before fencing). Retention only ever deletes its own writer's backups.
    std::string writer_state_id;
    std::uint64_t writer_generation = 0;
    /// The state's applied migrations at backup time, so a restore keeps its history.
    std::vector<AppliedMigration> migrations;
    /// [backup] exclude at backup time: globs of files not in the backup (never restored).
    std::vector<std::string> exclude;

    /// Sidecar only: the SHA256 fingerprint of the key that signed it (`signature`
    /// {"type": "sshsig", "namespace": "bartl-backup", "key": "SHA256:..."}, null when
    /// unsigned), so a sidecar whose signature file went missing says so.
    std::optional<std::string> signature_key;
    /// Not in the JSON: who signed the sidecar, as ops/signing.hpp check_signature() names
    /// it ("" when unsigned); filled when the catalog reads the sidecar and its signature.
    std::string signer;

    /// Sidecar JSON (pretty, newline-terminated).
    std::string to_json() const;
    /// In-archive JSON: no blob, files, bytes.
    std::string to_archive_json() const;
    /// Parses either form. Throws std::invalid_argument naming the missing or bad key.
    static BackupManifest from_json(const std::string& text);
};

/// Blob object name: "APP-YYYYMMDDTHHMMSSZ-VERSION-ID.tar.zst" (+".age" when encrypted).
std::string blob_name(const std::string& app, const std::string& compact_time, const std::string& version,
                      const std::string& id, bool encrypted);
/// The sidecar's name for a blob name: blob + ".json".
std::string sidecar_name(const std::string& blob);
/// The name of the sidecar's signature for a blob name: blob + ".json.sig" (SSHSIG armor).
std::string signature_name(const std::string& blob);

}  // namespace bartl
