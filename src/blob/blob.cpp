// The two compositions of the blob stages. Threads: like `tar | zstd` and `zstd -dc | tar -x`
// with two processes, each direction runs on two cores, joined by a bounded ChunkPipe: the
// tar writer on the caller's thread and everything after it on a second one; for a restore,
// reading, hashing, decryption and decompression on a second thread and extraction on the
// caller's. Staging is only committed by the caller after extract_blob() returns, which it
// does only after the second thread verified size and SHA-256.
#include "blob/blob.hpp"

#include <algorithm>
#include <exception>
#include <optional>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "blob/hash_stage.hpp"
#include "blob/pipe.hpp"
#include "blob/tar_writer.hpp"
#include "blob/zstd_stage.hpp"
#include "core/error.hpp"

namespace bartl {

namespace {

constexpr const char* kManifestEntry = "bartl/manifest.json";
constexpr std::uint64_t kProgressStep = 1024 * 1024;
constexpr std::uint64_t kMinUnpackedLimit = 256ull * 1024 * 1024;
constexpr std::uint64_t kUnpackedRatio = 200;
constexpr std::size_t kFetchBlock = 256 * 1024;

/// Calls the progress callback at most once per kProgressStep bytes (it may talk to systemd).
class Throttle {
public:
    Throttle(ProgressFn fn, std::uint64_t total) : fn_(std::move(fn)), total_(total) {}
    void update(std::uint64_t done) {
        if (fn_ && done >= last_ + kProgressStep) {
            last_ = done;
            fn_(done, total_);
        }
    }
    void finish(std::uint64_t done) {
        if (fn_) fn_(done, total_);
    }

private:
    ProgressFn fn_;
    std::uint64_t total_;
    std::uint64_t last_ = 0;
};

/// One step of the capture order: a state tree or a streamed section.
struct CaptureStep {
    std::size_t path_index = 0;                // "path" components: N of state/N
    const StreamComponent* stream = nullptr;   // any other kind
};

/// The capture order of `m`: its components (or, for manifests without them, its paths).
std::vector<CaptureStep> capture_order(const BackupManifest& m, const std::vector<StreamComponent>& streams) {
    std::vector<CaptureStep> steps;
    if (m.components.empty()) {
        for (std::size_t i = 0; i < m.paths.size(); ++i) steps.push_back({i, nullptr});
        return steps;
    }
    std::vector<bool> path_taken(m.paths.size(), false);
    for (const auto& c : m.components) {
        if (c.kind == "path") {
            const auto it = std::find(m.paths.begin(), m.paths.end(), c.name);
            const auto i = static_cast<std::size_t>(it - m.paths.begin());
            if (it == m.paths.end() || path_taken[i])
                throw std::invalid_argument(fmt::format("component path:{} is not once in the manifest's paths", c.name));
            path_taken[i] = true;
            steps.push_back({i, nullptr});
            continue;
        }
        const auto s = std::find_if(streams.begin(), streams.end(),
                                    [&](const StreamComponent& x) { return x.kind == c.kind && x.name == c.name; });
        if (s == streams.end())
            throw std::invalid_argument(fmt::format("component {}:{} has no stream to archive", c.kind, c.name));
        steps.push_back({0, &*s});
    }
    for (std::size_t i = 0; i < path_taken.size(); ++i)
        if (!path_taken[i])
            throw std::invalid_argument(fmt::format("state path {} is not among the manifest's components", m.paths[i]));
    return steps;
}

}  // namespace

BlobWriteResult write_blob(const BackupManifest& manifest, ByteSink& sink, int level, int threads,
                           const ProgressFn& progress) {
    BlobWriteOptions o;
    o.level = level;
    o.threads = threads;
    o.progress = progress;
    return write_blob(manifest, sink, o);
}

BlobWriteResult write_blob(const BackupManifest& manifest, ByteSink& sink, const BlobWriteOptions& options) {
    const auto steps = capture_order(manifest, options.streams);
    HashingSink hash(sink);
    std::optional<AgeEncryptor> age;
    if (options.encrypt_to) age.emplace(hash, *options.encrypt_to, options.cancel);
    // Built here, so a level zstd rejects is a ConfigError before anything runs.
    ZstdCompressor zstd(age ? static_cast<ByteSink&>(*age) : hash, options.level, options.threads);

    ChunkPipe pipe;
    std::exception_ptr compress_error;
    // Declared after the stages it uses: on every way out it is joined before they go.
    PipelineThread compressor(pipe, std::thread([&] {
        try {
            for (;;) {
                const auto chunk = pipe.pop();
                if (chunk.empty()) break;
                zstd.write(chunk.data(), chunk.size());
            }
            zstd.finish();
            if (age) age->finish();
        } catch (const PipeCancelled&) {
            // The tar side failed and reports why.
        } catch (...) {
            compress_error = std::current_exception();
            pipe.cancel();
        }
    }));

    BlobWriteResult result;
    PipeSink out(pipe);
    Throttle throttle(options.progress, 0);
    try {
        TarWriter tar(out, [&](std::uint64_t done) { throttle.update(done); });
        tar.add_file(kManifestEntry, manifest.to_archive_json());
        for (const auto& step : steps) {
            if (step.stream == nullptr) {
                tar.add_tree(manifest.paths[step.path_index], fmt::format("state/{}/", step.path_index),
                             manifest.exclude);
                continue;
            }
            auto in = step.stream->open();
            if (!in) throw std::invalid_argument(fmt::format("no stream for {}:{}", step.stream->kind, step.stream->name));
            tar.add_stream(step.stream->section, *in, options.chunk_bytes);
        }
        tar.finish();
        pipe.close();
        compressor.join(false);
        const auto& st = tar.stats();
        result.files = st.files;
        result.bytes = st.bytes;
        result.stream_bytes = st.stream_bytes;
        result.changed_while_read = st.changed_while_read;
        result.warnings = st.warnings;
        result.excluded = st.excluded;
        throttle.finish(st.bytes + st.stream_bytes);
    } catch (...) {
        compressor.join();
        // A stopped compressor (full disk, unreachable store, age) is the cause of the tar
        // side's error.
        if (compress_error) std::rethrow_exception(compress_error);
        throw;
    }
    if (compress_error) std::rethrow_exception(compress_error);
    result.blob_size = hash.size();
    result.sha256 = hash.finish();
    return result;
}

BlobExtractResult extract_blob(ByteSource& source, std::uint64_t expected_size, const std::string& expected_sha256,
                               const std::vector<std::filesystem::path>& staging, const ProgressFn& progress,
                               const BlobReadOptions& options) {
    const std::string& label = options.label;
    const std::uint64_t limit = options.max_unpacked != 0
                                    ? options.max_unpacked
                                    : std::max(kMinUnpackedLimit, kUnpackedRatio * expected_size);
    HashingSource hash(source, expected_size, label);
    Throttle throttle(progress, expected_size);
    TarExtractOptions xo;
    xo.label = label;
    xo.sections = options.sections;
    xo.on_file = options.on_file;
    xo.on_input = [&] { throttle.update(hash.consumed()); };
    TarExtractor extractor(staging, std::move(xo));  // checks staging before anything is read

    std::optional<AgeDecryptor> age;
    if (options.encrypted) age.emplace(hash, options.identities, label, options.cancel);
    ZstdDecompressor zstd(age ? static_cast<ByteSource&>(*age) : hash, limit, label);

    ChunkPipe pipe;
    PipelineThread fetcher(pipe, std::thread([&] {
        try {
            std::vector<char> buf(kFetchBlock);
            for (;;) {
                const std::size_t n = zstd.read(buf.data(), buf.size());
                if (n == 0) break;
                if (!pipe.push(buf.data(), n)) return;  // the extractor stopped; it reports why
            }
            // The pipe ends with close() only when the whole blob verified.
            hash.verify(expected_sha256);
            pipe.close();
        } catch (...) {
            pipe.fail(std::current_exception());
        }
    }));
    PipeSource in(pipe);
    extractor.read_entries(in);
    // Whatever follows the tar end-of-archive blocks (padding) is read, and the fetch stage's
    // verdict on size and SHA-256 arrives with the end of the pipe.
    in.drain();
    fetcher.join(false);
    throttle.finish(hash.consumed());
    return extractor.finish();
}

void check_blob(ByteSource& source, std::uint64_t expected_size, const std::string& expected_sha256,
                const BlobReadOptions& options) {
    HashingSource hash(source, expected_size, options.label);
    hash.verify(expected_sha256);
}

}  // namespace bartl
