#include "ops/backup.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

#include "blob/blob.hpp"
#include "core/words.hpp"
#include "core/error.hpp"
#include "core/retention.hpp"
#include "core/time.hpp"
#include "ops/catalog.hpp"
#include "ops/events.hpp"
#include "ops/instance.hpp"
#include "ops/signing.hpp"
#include "state/database.hpp"
#include "state/declared.hpp"
#include "store/identity.hpp"
#include "util/fs.hpp"
#include "util/host.hpp"
#include "util/log.hpp"
#include "util/process.hpp"
#include "util/random.hpp"

namespace bartl {

std::string new_backup_id() { return random_hex(4); }

namespace {

/// Throttles progress reports to one a second and checks for cancellation on every chunk.
ProgressFn make_progress(const Reporter& reporter, const std::string& what, const Context& ctx) {
    auto last = std::make_shared<std::chrono::steady_clock::time_point>();
    return [&reporter, what, ctx, last](std::uint64_t done, std::uint64_t total) {
        ctx.check(what);
        auto now = std::chrono::steady_clock::now();
        if (now - *last < std::chrono::seconds(1)) return;
        *last = now;
        reporter.alive();
        if (reporter.progress) reporter.progress(done, total);
        reporter.set_status(total ? fmt::format("{}: {} of {}", what, format_bytes(done), format_bytes(total))
                                  : fmt::format("{}: {}", what, format_bytes(done)));
    };
}

/// The key this backup is signed with (std::nullopt: unsigned). Throws RuntimeError when the
/// key cannot be used, or when [backup] trusted_keys is set and the backup would be one its
/// own restores refuse (no key, or a key not among the trusted ones).
std::optional<SshSigningKey> signing_key_for_backup(const Config& config) {
    auto key = load_signing_key(config);
    if (!config.requires_signature()) return key;
    if (!key)
        throw RuntimeError(fmt::format(
            "no backup taken: [backup] trusted_keys is set, so restores accept only signed backups, and no signing "
            "key is available: provide the systemd credential {} (LoadCredential={}:FILE, an OpenSSH Ed25519 "
            "private key) or set [backup] signing_key_file",
            kSigningKeyCredential, kSigningKeyCredential));
    if (!find_key(load_trusted_keys(config), key->pub))
        throw RuntimeError(fmt::format("no backup taken: the signing key {} ({}) is not among [backup] trusted_keys "
                                       "and trusted_keys_file, so no restore would accept its backups: add its "
                                       "public key line \"{}\"",
                                       key->pub.fingerprint(), key->pub.comment, key->pub.line()));
    return key;
}

/// Checks the writer claim and records a new one in the marker (and its file).
void claim_writer(const Config& config, Store& store, const Context& ctx, Marker& marker) {
    const auto claim =
        marker.writer.deferred == "takeover"
            ? take_over_store(store, ctx, config.app_name, config.instance, marker.state_id,
                              init_store_commands(config))
            : require_writer(store, ctx, config.app_name, config.instance, marker.state_id,
                             marker.writer.deferred == "claim", init_store_commands(config));
    if (marker.writer.store_id == claim.store_id && marker.writer.generation == claim.writer.generation &&
        marker.writer.deferred.empty())
        return;
    marker.writer = WriterClaim{claim.store_id, claim.writer.generation, ""};
    add_history(marker, "claim", marker.version, marker.version,
                fmt::format("store {} (store ID {}), writer generation {}", store.url(), claim.store_id,
                            claim.writer.generation));
    Instance(config).write_marker(marker);
}

}  // namespace

BlobReadOptions read_options(const BackupManifest& b) {
    BlobReadOptions o;
    o.label = "backup " + b.id;
    // The unpacked tar is the file content plus headers and padding per entry; a stream that
    // unpacks to more than that is not this backup (a zstd bomb) and is stopped early.
    // Dumps are archived in chunks of 8 MiB, one header each: bytes / 512 covers them.
    o.max_unpacked = b.bytes + b.bytes / 512 + (b.files + 1) * 8192 + (16ULL << 20);
    return o;
}

BlobReadOptions extract_options(const Config& config, const BackupManifest& b) {
    auto o = read_options(b);
    if (!b.encryption) return o;
    if (*b.encryption != "age")
        throw IntegrityError(fmt::format("backup {}: encryption \"{}\" is not supported (bartl writes \"age\")", b.id,
                                         *b.encryption));
    o.encrypted = true;
    std::string credential = fmt::format("the systemd credential {} (LoadCredential={}:FILE)", kAgeIdentityCredential,
                                         kAgeIdentityCredential);
    if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY"); dir && *dir) {
        const auto file = std::filesystem::path(dir) / kAgeIdentityCredential;
        credential = file.string();
        if (std::filesystem::exists(file)) o.identities.push_back(file);
    }
    if (config.identity_file) {
        if (!std::filesystem::exists(*config.identity_file))
            throw RuntimeError(fmt::format("backup {} is encrypted and [backup] identity_file {} does not exist", b.id,
                                           config.identity_file->string()));
        o.identities.push_back(*config.identity_file);
    }
    if (o.identities.empty())
        throw RuntimeError(fmt::format(
            "backup {} is encrypted (age) and no identity is available to decrypt it: provide {} or set [backup] "
            "identity_file; bartl will not start a fresh install over encrypted backups",
            b.id, credential));
    return o;
}

namespace {
BackupManifest take_backup_here(const Config& config, Store& store, const Context& ctx, Marker& marker,
                                const std::string& engine_version, const BackupRequest& request,
                                const Reporter& reporter);
}  // namespace

BackupManifest take_backup(const Config& config, Store& store, const Context& ctx, Marker& marker,
                           const std::string& engine_version, const BackupRequest& request, const Reporter& reporter) {
    if (config.backup_nice == 0) return take_backup_here(config, store, ctx, marker, engine_version, request, reporter);
    // On a thread of its own, so the lowered priority ends with the backup: the caller (the
    // main thread before it starts the app, a serving daemon's backup thread) keeps its own,
    // and so does every process it starts later — the app above all.
    BackupManifest result;
    std::exception_ptr error;
    std::thread worker([&] {
        lower_thread_priority(config.backup_nice);
        try {
            result = take_backup_here(config, store, ctx, marker, engine_version, request, reporter);
        } catch (...) {
            error = std::current_exception();
        }
    });
    worker.join();
    if (error) std::rethrow_exception(error);
    return result;
}

namespace {
BackupManifest take_backup_here(const Config& config, Store& store, const Context& ctx, Marker& marker,
                                const std::string& engine_version, const BackupRequest& request,
                                const Reporter& reporter) {
    const auto started = std::chrono::steady_clock::now();
    const auto signing_key = signing_key_for_backup(config);
    // Fencing first: a state that lost the store writes nothing there (invariant 9).
    claim_writer(config, store, ctx, marker);
    const std::string& state_version = marker.version;
    auto env = hook_env(config, engine_version, state_version);
    env["BARTL_BACKUP_REASON"] = request.reason;
    env["BARTL_APP_RUNNING"] = request.app_running ? "1" : "0";
    // A backup killed from here on (kill -9, a crash, the host going down) leaves this record:
    // the next start says so (daemon/main.cpp), instead of only a partial upload in the store
    // or, killed in pre_backup, nothing at all while post_backup never ran.
    const Instance instance(config);
    const std::string backup_id = request.id.empty() ? new_backup_id() : request.id;
    const auto hook_started = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    if (!config.hook_pre_backup.empty())
        instance.write_running_backup(
            RunningBackupRecord{backup_id, request.reason, hook_started, RunningBackupRecord::Phase::pre_backup});
    struct RunningRecord {
        const Instance& instance;
        ~RunningRecord() { instance.clear_running_backup(); }
    } running_record{instance};
    run_hook(config, "pre_backup", config.hook_pre_backup, env, ctx.cancel);

    const auto now_ms = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    const auto now = std::chrono::floor<std::chrono::seconds>(now_ms);
    BackupManifest m;
    m.app = config.app_name;
    m.version = state_version;
    m.created = format_rfc3339_ms(now_ms);
    m.host = host_name();
    m.id = backup_id;
    m.compression = fmt::format("zstd:{}", config.compression_level);
    // Capture order (bartl.toml(5) "DATABASES"): the state paths, then the databases in
    // declaration order, each dump started only when its turn comes.
    for (const auto& p : config.state_paths) {
        m.components.push_back(ManifestComponent{"path", p.string()});
        m.paths.push_back(p.string());
    }
    std::vector<std::unique_ptr<DatabaseComponent>> databases;
    std::vector<StreamComponent> streams;
    for (const auto& d : config.databases) {
        databases.push_back(make_database_component(d));
        const DatabaseComponent* c = databases.back().get();
        m.components.push_back(ManifestComponent{c->kind(), c->name()});
        streams.push_back(StreamComponent{c->kind(), c->name(), c->section(), [c, &m] {
                                              log::info(fmt::format("backup {}: dumping {}", m.id, c->id()),
                                                        {{"BARTL_BACKUP_ID", m.id}});
                                              return c->open_dump();
                                          }});
    }
    m.reason = request.reason;
    instance.write_running_backup(
        RunningBackupRecord{m.id, m.reason, hook_started, RunningBackupRecord::Phase::upload});
    m.writer_state_id = marker.state_id;
    m.writer_generation = marker.writer.generation;
    m.migrations = marker.migrations;
    m.exclude = config.backup_exclude;
    if (config.encrypts()) m.encryption = "age";
    m.blob_name = blob_name(config.app_name, format_compact(now), state_version, m.id, config.encrypts());
    const std::string what = fmt::format("Backing up {} to {}", config.instance, m.blob_name);
    reporter.set_status(what);
    log::info(fmt::format("backup {} ({}) started: {} to {}", m.id, m.reason, m.blob_name, store.url()),
              {{"BARTL_BACKUP_ID", m.id}});

    auto writer = store.create(ctx, m.blob_name);
    BlobWriteResult r;
    try {
        BlobWriteOptions o;
        o.level = config.compression_level;
        o.threads = config.compression_threads;
        o.progress = make_progress(reporter, what, ctx);
        o.cancel = ctx.cancel;
        o.streams = std::move(streams);
        if (config.encrypts()) {
            AgeRecipients to{config.encrypt_to, {}};
            if (config.encrypt_to_file) to.files.push_back(*config.encrypt_to_file);
            o.encrypt_to = std::move(to);
        }
        r = write_blob(m, *writer, o);
        writer->commit(ctx);
    } catch (...) {
        try {
            writer->abort(ctx.child());
        } catch (const std::exception& e) {
            log::warn(fmt::format("backup {}: the unfinished upload stays until the next cleanup: {}", m.id, e.what()));
        }
        throw;
    }
    m.blob_size = r.blob_size;
    m.blob_sha256 = r.sha256;
    m.files = r.files;
    // The dumps count as content: restore compares, and bounds decompression by, the total.
    m.bytes = r.bytes + r.stream_bytes;
    for (const auto& w : r.warnings) log::warn(fmt::format("backup {}: {}", m.id, w), {{"BARTL_BACKUP_ID", m.id}});
    for (const auto& f : r.changed_while_read)
        log::warn(fmt::format("backup {}: {} changed while it was read (consistency = \"live\"); the copy in the "
                              "backup may be inconsistent", m.id, f), {{"BARTL_BACKUP_ID", m.id}});
    if (signing_key) m.signature_key = signing_key->pub.fingerprint();
    const std::string sidecar = m.to_json();
    try {
        // Its signature before the sidecar: a listed backup always has its signature.
        if (signing_key) {
            store.put(ctx, signature_name(m.blob_name), sshsig_sign(*signing_key, sidecar, kSignatureNamespace));
            m.signer = signing_key->pub.comment.empty()
                           ? signing_key->pub.fingerprint()
                           : fmt::format("{} {}", signing_key->pub.comment, signing_key->pub.fingerprint());
        }
        // The sidecar is written last: only now does the backup exist (invariant 3).
        store.put(ctx, sidecar_name(m.blob_name), sidecar);
    } catch (...) {
        try {
            store.remove_many(ctx.child(), {signature_name(m.blob_name), m.blob_name});
        } catch (...) {
        }
        throw;
    }
    const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    log::write(log::Level::notice,
               fmt::format("backup {} finished: {} ({}, {} of data, {} blob, {}) in {:.1f}s", m.id, m.blob_name,
                           count_noun(m.files, "file", "files"), format_bytes(m.bytes), format_bytes(m.blob_size), m.reason, secs),
               {{"BARTL_BACKUP_ID", m.id}}, event::backup_finished);
    try {
        // For the schedule of the next start (core/schedule.hpp); losing it costs no backup.
        Instance(config).write_last_backup(LastBackupRecord{marker.state_id, m.id, now_ms});
    } catch (const Error& e) {
        log::warn(fmt::format("backup {}: cannot record it as the last backup: {}", m.id, e.what()));
    }
    // The backup is stored: killed from here on, the next start must not call it interrupted
    // in its upload. Killed in post_backup, it says so.
    try {
        if (config.hook_post_backup.empty())
            instance.clear_running_backup();
        else
            instance.write_running_backup(
                RunningBackupRecord{m.id, m.reason, hook_started, RunningBackupRecord::Phase::post_backup});
    } catch (const std::exception& e) {
        instance.clear_running_backup();
        log::warn(fmt::format("backup {}: cannot record that its post_backup hook runs: {}", m.id, e.what()));
    }
    env["BARTL_BACKUP_ID"] = m.id;
    env["BARTL_BACKUP_NAME"] = m.blob_name;
    // The backup is committed: stopping its post_backup would leave it half-announced.
    run_hook(config, "post_backup", config.hook_post_backup, env, ctx.cancel, /*stoppable=*/false);
    instance.clear_running_backup();
    try {
        apply_retention(config, store, ctx, marker.state_id);
        // A day is far longer than any upload or the gap between a blob and its sidecar.
        remove_incomplete_backups(config, store, ctx, std::chrono::hours(24));
    } catch (const Error& e) {
        log::warn(fmt::format("retention after backup {} failed: {}", m.id, e.what()));
    }
    return m;
}
}  // namespace

unsigned apply_retention(const Config& config, Store& store, const Context& ctx, const std::string& state_id) {
    const auto& pol = config.retention;
    if (pol.keep_last == 0 && pol.keep_daily == 0 && pol.keep_weekly == 0 && pol.keep_monthly == 0) return 0;
    // A planted or unsigned backup neither counts as the newest nor is deleted.
    auto backups = list_backups(store, ctx, config.app_name, trust_policy(config));
    std::vector<RetentionItem> items;
    for (const auto& b : backups) {
        RetentionItem it;
        it.id = b.id;
        it.created = parse_rfc3339_ms(b.created);
        it.pre_migration = b.reason == "pre-migration";
        // Backups of bartl before fencing name no writer: they predate every claim.
        it.ours = b.writer_state_id.empty() || b.writer_state_id == state_id;
        items.push_back(it);
    }
    const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    // Only the newest backup of ours needs to be proven good before anything older may go
    // (invariant 6); check it only when the policy would delete something. "Newest" as
    // select_retention() orders: by creation time to the millisecond, then id.
    std::optional<std::size_t> newest_at;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (!items[i].ours || items[i].created > now + kClockSkewAllowed) continue;
        if (!newest_at || items[i].created > items[*newest_at].created ||
            (items[i].created == items[*newest_at].created && items[i].id > items[*newest_at].id))
            newest_at = i;
    }
    const BackupManifest* newest = nullptr;
    if (newest_at) {
        items[*newest_at].verified = true;
        newest = &backups[*newest_at];
    }
    auto sel = select_retention(items, pol, now, kClockSkewAllowed);
    if (sel.remove.empty() || !newest) return 0;
    try {
        auto src = store.open(ctx, newest->blob_name);
        check_blob(*src, newest->blob_size, newest->blob_sha256, read_options(*newest));
    } catch (const IntegrityError& e) {
        log::error(fmt::format("retention skipped: newest backup {} does not verify: {}", newest->id, e.what()),
                   {{"BARTL_BACKUP_ID", newest->id}});
        return 0;
    }
    std::vector<BackupManifest> doomed;
    std::vector<std::string> sidecars, blobs;
    for (const auto& id : sel.remove)
        if (auto b = find_backup(backups, id)) {
            sidecars.push_back(sidecar_name(b->blob_name));
            blobs.push_back(signature_name(b->blob_name));
            blobs.push_back(b->blob_name);
            doomed.push_back(std::move(*b));
        }
    // Sidecars first, all of them: from then on those backups do not exist, even if a blob or
    // signature stays (remove_incomplete_backups() takes it later). One request each on S3.
    if (doomed.empty()) return 0;
    store.remove_many(ctx, sidecars);
    store.remove_many(ctx, blobs);
    for (const auto& b : doomed)
        log::info(fmt::format("retention: deleted backup {} ({}, created {})", b.id, b.blob_name, b.created),
                  {{"BARTL_BACKUP_ID", b.id}});
    return static_cast<unsigned>(doomed.size());
}

unsigned remove_incomplete_backups(const Config& config, Store& store, const Context& ctx, std::chrono::seconds age) {
    const std::string prefix = config.app_name + "-";
    unsigned n = store.remove_abandoned_uploads(ctx, prefix, age);
    const auto objects = store.list(ctx, prefix);
    std::set<std::string> present;
    for (const auto& o : objects) present.insert(o.name);
    const auto cutoff = std::chrono::system_clock::now() - age;
    for (const auto& o : objects) {
        // A signature whose sidecar is gone: left by retention or by a backup killed before
        // its sidecar was written.
        if (o.name.size() > 9 && o.name.compare(o.name.size() - 9, 9, ".json.sig") == 0) {
            const auto blob = o.name.substr(0, o.name.size() - 9);
            if (!parse_blob_name(config.app_name, blob) || present.count(sidecar_name(blob)) || o.modified >= cutoff)
                continue;
            store.remove(ctx, o.name);
            log::info(fmt::format("store {}: removed {}, the signature of a backup whose sidecar is gone", store.url(),
                                  o.name));
            ++n;
            continue;
        }
        // Only names bartl writes for this app: anything else is not ours to delete.
        auto ref = parse_blob_name(config.app_name, o.name);
        if (!ref || present.count(sidecar_name(o.name))) continue;
        if (ref->created >= cutoff || o.modified >= cutoff) continue;
        store.remove(ctx, o.name);
        log::info(fmt::format("store {}: removed {}, a backup blob whose sidecar was never written", store.url(),
                              o.name));
        ++n;
    }
    return n;
}

std::vector<const DatabaseComponent*> map_databases(const std::vector<std::unique_ptr<Component>>& declared,
                                                    const BackupManifest& backup, const Config& config) {
    std::vector<const DatabaseComponent*> out;
    for (const auto& mc : backup.components) {
        if (mc.kind == "path") continue;
        const DatabaseComponent* found = nullptr;
        for (const auto& c : declared)
            if (!c->tree() && c->kind() == mc.kind && c->name() == mc.name)
                found = dynamic_cast<const DatabaseComponent*>(c.get());
        if (!found)
            throw ConfigError(fmt::format("{}: backup {} holds the database {}, which [[state.databases]] does not "
                                          "declare: declare it (type = \"{}\"), or restore it by hand "
                                          "(bartl.toml(5) DATABASES)",
                                          config.file.string(), backup.id, component_id(mc.kind, mc.name), mc.kind));
        if (std::find(out.begin(), out.end(), found) != out.end())
            throw IntegrityError(fmt::format("backup {} names database {} twice", backup.id, found->id()));
        out.push_back(found);
    }
    return out;
}

void check_extracted(const BlobExtractResult& r, const BackupManifest& b) {
    std::uint64_t bytes = r.bytes;
    for (const auto& [section, n] : r.section_bytes) bytes += n;
    if (r.files != b.files || bytes != b.bytes)
        throw IntegrityError(fmt::format("backup {}: archive holds {} entries and {} bytes, sidecar says {} and {}",
                                         b.id, r.files, bytes, b.files, b.bytes));
}

namespace {

/// Where verify_backup() sends a dump: nowhere (the SHA-256 of the blob covers its bytes).
class DiscardSink final : public ByteSink {
public:
    void write(const void*, std::size_t) override {}
};

}  // namespace

BackupManifest verify_backup(const Config& config, Store& store, const Context& ctx, const std::string& id,
                             const Reporter& reporter) {
    auto backups = list_backups(store, ctx, config.app_name, reporting_policy(config));
    if (backups.empty()) {
        // An empty location without bartl's identity is a mistyped bucket, prefix or path, not
        // a store without backups: StoreNotInitialized says so and names --init-store.
        read_store_identity(store, ctx, config.app_name, config.instance, init_store_commands(config));
        throw NotFound(fmt::format("store {} holds no backup of {}", store.url(), config.app_name));
    }
    auto b = id.empty() ? std::optional<BackupManifest>(backups.front()) : find_backup(backups, id);
    if (!b) throw NotFound(fmt::format("store {} holds no backup '{}' of app {}", store.url(), id, config.app_name));
    // Its signature is checked as a restore checks it: verify fails where a restore would refuse.
    if (config.requires_signature())
        if (const auto ref = find_ref(list_backup_refs(store, ctx, config.app_name).backups, b->blob_name))
            b = read_sidecar(store, ctx, config.app_name, *ref, trust_policy(config, /*report=*/true));
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
    auto opts = extract_options(config, *b);
    const auto declared = declared_components(config);
    DiscardSink discard;
    for (const auto* d : map_databases(declared, *b, config)) opts.sections[d->section()] = SectionConsumer{&discard, {}};
    auto src = store.open(ctx, b->blob_name);
    auto r = extract_blob(*src, b->blob_size, b->blob_sha256, staging,
                          make_progress(reporter, "Verifying " + b->id, ctx), opts);
    check_extracted(r, *b);
    if (r.archive_manifest.id != b->id || r.archive_manifest.app != b->app || r.archive_manifest.version != b->version)
        throw IntegrityError(fmt::format("backup {}: archive manifest (app {}, version {}, id {}) does not match the sidecar",
                                         b->id, r.archive_manifest.app, r.archive_manifest.version, r.archive_manifest.id));
    return *b;
}

}  // namespace bartl
