// Durable filesystem primitives: atomic replace, fsync discipline, safe removal.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace bartl::fs {

/// Writes `content` to `path` atomically: temp file in the same directory, write, fsync,
/// rename over `path`, fsync the directory. Throws RuntimeError naming the path and errno text.
void write_file_atomic(const std::filesystem::path& path, const std::string& content, unsigned mode = 0644);

/// Reads a whole small file (markers, manifests, version files). Returns std::nullopt if it
/// does not exist; throws RuntimeError on other errors.
std::optional<std::string> read_file(const std::filesystem::path& path);

/// fsync(2) a directory, making renames/creates/unlinks in it durable. Throws RuntimeError.
void fsync_dir(const std::filesystem::path& dir);

/// syncfs(2) of the filesystem holding `path`: every write there, by bartld or by a hook it
/// ran, is on disk afterwards. Called before a marker records what a hook wrote. Throws
/// RuntimeError.
void sync_filesystem(const std::filesystem::path& path);

/// Makes the tree under `root` durable: fsync(2) of every regular file and directory in it
/// (symlinks, hard links and xattrs are made durable by their directory's or inode's fsync)
/// when it holds at most `max_entries` entries, else one syncfs(2) of its filesystem (one
/// flush beats hundreds of fsyncs: 1,000 small files take 0.2-0.6 s by fsync, 0.02 s by
/// syncfs on an idle virtio disk). Entries gone since the walk are skipped. The per-file way does not write back other programs'
/// dirty data on the same filesystem — a database server's, whose durability is its own
/// business and whose pages a syncfs would flush at the cost of the restore's wall time.
/// Returns true if it fell back to syncfs. Throws RuntimeError naming the path and errno text.
bool sync_tree(const std::filesystem::path& root, std::size_t max_entries = 128);

/// rename(2) then fsync of the parent directory (or both parents when they differ).
/// Throws RuntimeError naming both paths.
void rename_durable(const std::filesystem::path& from, const std::filesystem::path& to);

/// Removes a file if present, then fsyncs its directory. Throws RuntimeError on errors other
/// than ENOENT.
void remove_durable(const std::filesystem::path& path);

/// Recursively removes a tree without following symlinks and without crossing into other
/// mounts. Missing path is not an error. Throws RuntimeError.
void remove_tree(const std::filesystem::path& path);

/// True when `path` does not exist or is an empty directory ("holds no data"); an empty
/// lost+found directory in it (a fresh ext4 filesystem) does not count as data.
/// Throws RuntimeError when it exists and cannot be read.
bool is_missing_or_empty(const std::filesystem::path& path);

/// Creates a directory and its parents (mode 0755 unless given); fsyncs the parent of each
/// directory it created. Throws RuntimeError.
void make_dirs(const std::filesystem::path& path, unsigned mode = 0755);

/// The staging directory for target `t`: "<parent>/.<name>.bartl-staging" (same filesystem).
std::filesystem::path staging_path_for(const std::filesystem::path& target);

}  // namespace bartl::fs
