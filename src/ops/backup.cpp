#include "ops/backup.hpp"

#include <chrono>
#include <random>
#include <set>
#include <unistd.h>

#include <fmt/format.h>

#include "blob/blob.hpp"
#include "core/error.hpp"
#include "core/retention.hpp"
#include "core/time.hpp"
#include "ops/catalog.hpp"
#include "ops/events.hpp"
#include "ops/instance.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

namespace bartl {

std::string new_backup_id() {
    std::random_device rd;
    return fmt::format("{:08x}", static_cast<std::uint32_t>(rd()));
}

namespace {

std::string host_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
    return buf;
}

/// Throttles progress reports to one a second and checks the cancel flag on every chunk.
ProgressFn make_progress(const Reporter& reporter, const std::string& what, const std::atomic<bool>* cancel) {
    auto last = std::make_shared<std::chrono::steady_clock::time_point>();
    return [&reporter, what, cancel, last](std::uint64_t done, std::uint64_t total) {
        if (cancel && cancel->load()) throw RuntimeError(what + ": cancelled");
        auto now = std::chrono::steady_clock::now();
        if (now - *last < std::chrono::seconds(1)) return;
        *last = now;
        reporter.alive();
        if (reporter.progress) reporter.progress(done, total);
        reporter.set_status(total ? fmt::format("{}: {} of {}", what, format_bytes(done), format_bytes(total))
                                  : fmt::format("{}: {}", what, format_bytes(done)));
    };
}

/// Writes a small object (a sidecar) through the store's temp-name + commit path.
void put_text(Store& store, const std::string& name, const std::string& text) {
    auto w = store.create(name);
    w->write(text.data(), text.size());
    w->commit();
}

}  // namespace

BlobReadOptions read_options(const BackupManifest& b) {
    BlobReadOptions o;
    o.label = "backup " + b.id;
    // The unpacked tar is the file content plus headers and padding per entry; a stream that
    // unpacks to more than that is not this backup (a zstd bomb) and is stopped early.
    o.max_unpacked = b.bytes + (b.files + 1) * 8192 + (16ULL << 20);
    return o;
}

BackupManifest take_backup(const Config& config, Store& store, const std::string& state_version,
                           const std::string& engine_version, const Reporter& reporter,
                           const std::atomic<bool>* cancel, const std::string& id) {
    const auto started = std::chrono::steady_clock::now();
    auto env = hook_env(config, engine_version, state_version);
    run_hook(config, "pre_backup", config.hook_pre_backup, env);

    const auto now_ms = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    const auto now = std::chrono::floor<std::chrono::seconds>(now_ms);
    BackupManifest m;
    m.app = config.app_name;
    m.version = state_version;
    m.created = format_rfc3339_ms(now_ms);
    m.host = host_name();
    m.id = id.empty() ? new_backup_id() : id;
    m.compression = fmt::format("zstd:{}", config.compression_level);
    for (const auto& p : config.state_paths) {
        m.components.push_back(Component{"path", p.string()});
        m.paths.push_back(p.string());
    }
    m.blob_name = blob_name(config.app_name, format_compact(now), state_version, m.id, false);
    const std::string what = fmt::format("Backing up {} to {}", config.instance, m.blob_name);
    reporter.set_status(what);
    log::info(fmt::format("backup {} started: {} to {}", m.id, m.blob_name, store.url()),
              {{"BARTL_BACKUP_ID", m.id}});

    auto writer = store.create(m.blob_name);
    auto r = write_blob(m, *writer, config.compression_level, config.compression_threads,
                        make_progress(reporter, what, cancel));
    writer->commit();
    m.blob_size = r.blob_size;
    m.blob_sha256 = r.sha256;
    m.files = r.files;
    m.bytes = r.bytes;
    for (const auto& w : r.warnings) log::warn(fmt::format("backup {}: {}", m.id, w), {{"BARTL_BACKUP_ID", m.id}});
    for (const auto& f : r.changed_while_read)
        log::warn(fmt::format("backup {}: {} changed while it was read (consistency = \"live\"); the copy in the "
                              "backup may be inconsistent", m.id, f), {{"BARTL_BACKUP_ID", m.id}});
    try {
        // The sidecar is written last: only now does the backup exist (invariant 3).
        put_text(store, sidecar_name(m.blob_name), m.to_json());
    } catch (...) {
        try { store.remove(m.blob_name); } catch (...) {}
        throw;
    }
    const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    log::write(log::Level::notice,
               fmt::format("backup {} finished: {} ({} files, {} of data, {} blob) in {:.1f}s", m.id, m.blob_name,
                           m.files, format_bytes(m.bytes), format_bytes(m.blob_size), secs),
               {{"BARTL_BACKUP_ID", m.id}}, event::backup_finished);
    env["BARTL_BACKUP_ID"] = m.id;
    env["BARTL_BACKUP_NAME"] = m.blob_name;
    // The backup is committed: stopping its post_backup would leave it half-announced.
    run_hook(config, "post_backup", config.hook_post_backup, env, /*stoppable=*/false);
    try {
        apply_retention(config, store);
        // A day is far longer than any upload or the gap between a blob and its sidecar.
        remove_incomplete_backups(config, store, std::chrono::hours(24));
    } catch (const Error& e) {
        log::warn(fmt::format("retention after backup {} failed: {}", m.id, e.what()));
    }
    return m;
}

unsigned apply_retention(const Config& config, Store& store) {
    const auto& pol = config.retention;
    if (pol.keep_last == 0 && pol.keep_daily == 0 && pol.keep_weekly == 0 && pol.keep_monthly == 0) return 0;
    auto backups = list_backups(store, config.app_name);
    if (backups.size() <= 1) return 0;
    std::vector<RetentionItem> items;
    for (const auto& b : backups) items.push_back(RetentionItem{b.id, parse_rfc3339(b.created), false});
    // Only the newest backup needs to be proven good before anything older may go
    // (invariant 6); check it only when the policy would delete something.
    items.front().verified = true;
    auto sel = select_retention(items, pol);
    if (sel.remove.empty()) return 0;
    const auto& newest = backups.front();
    try {
        auto src = store.open(newest.blob_name);
        check_blob(*src, newest.blob_size, newest.blob_sha256, read_options(newest));
    } catch (const IntegrityError& e) {
        log::error(fmt::format("retention skipped: newest backup {} does not verify: {}", newest.id, e.what()),
                   {{"BARTL_BACKUP_ID", newest.id}});
        return 0;
    }
    unsigned n = 0;
    for (const auto& id : sel.remove) {
        auto b = find_backup(backups, id);
        if (!b) continue;
        // Sidecar first: from then on the backup does not exist, even if the blob stays.
        store.remove(sidecar_name(b->blob_name));
        store.remove(b->blob_name);
        log::info(fmt::format("retention: deleted backup {} ({}, created {})", b->id, b->blob_name, b->created),
                  {{"BARTL_BACKUP_ID", b->id}});
        ++n;
    }
    return n;
}

unsigned remove_incomplete_backups(const Config& config, Store& store, std::chrono::seconds age) {
    const std::string prefix = config.app_name + "-";
    unsigned n = store.remove_abandoned_uploads(prefix, age);
    const auto names = store.list(prefix);
    const std::set<std::string> present(names.begin(), names.end());
    const auto cutoff = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()) - age;
    for (const auto& name : names) {
        if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) continue;
        if (present.count(sidecar_name(name))) continue;
        // The name's creation time: "APP-YYYYMMDDTHHMMSSZ-...". A name we did not write
        // (no such time) is not ours to delete.
        if (name.size() < prefix.size() + 16) continue;
        std::chrono::sys_seconds created;
        try {
            created = parse_compact(name.substr(prefix.size(), 16));
        } catch (const std::invalid_argument&) {
            continue;
        }
        if (created >= cutoff) continue;
        store.remove(name);
        log::info(fmt::format("store {}: removed {}, a backup blob whose sidecar was never written", store.url(), name));
        ++n;
    }
    return n;
}

BackupManifest verify_backup(const Config& config, Store& store, const std::string& id, const Reporter& reporter) {
    auto backups = list_backups(store, config.app_name);
    auto b = find_backup(backups, id);
    if (!b) throw NotFound(fmt::format("store {} holds no backup '{}' of app {}", store.url(), id, config.app_name));
    fs::make_dirs(config.bartl_dir);
    auto tmp = config.bartl_dir / fmt::format(".verify-{}-{}", b->id, getpid());
    fs::remove_tree(tmp);
    std::vector<std::filesystem::path> staging;
    for (std::size_t i = 0; i < b->paths.size(); ++i) {
        staging.push_back(tmp / std::to_string(i));
        fs::make_dirs(staging.back(), 0700);
    }
    struct Cleanup {
        std::filesystem::path p;
        ~Cleanup() { try { fs::remove_tree(p); } catch (...) {} }
    } cleanup{tmp};
    auto src = store.open(b->blob_name);
    auto r = extract_blob(*src, b->blob_size, b->blob_sha256, staging,
                          make_progress(reporter, "Verifying " + b->id, nullptr), read_options(*b));
    if (r.files != b->files || r.bytes != b->bytes)
        throw IntegrityError(fmt::format("backup {}: archive holds {} entries and {} bytes, sidecar says {} and {}",
                                         b->id, r.files, r.bytes, b->files, b->bytes));
    if (r.archive_manifest.id != b->id || r.archive_manifest.app != b->app || r.archive_manifest.version != b->version)
        throw IntegrityError(fmt::format("backup {}: archive manifest (app {}, version {}, id {}) does not match the sidecar",
                                         b->id, r.archive_manifest.app, r.archive_manifest.version, r.archive_manifest.id));
    return *b;
}

}  // namespace bartl
