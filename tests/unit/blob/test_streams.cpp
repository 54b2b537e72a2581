// Streamed sections (database dumps of unknown length): chunked into db/SECTION.NNNNNN by the
// tar writer, joined again by `cat`, delivered in order to a per-section consumer by the
// extractor, which refuses what nobody asked for, gaps, duplicates and reordering.
#include <archive.h>
#include <archive_entry.h>

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "archive_builder.hpp"
#include "blob/blob.hpp"
#include "blob/tar_writer.hpp"
#include "blob_test_util.hpp"
#include "../string_streams.hpp"
#include "core/error.hpp"

using namespace bartl;
using namespace bartl::test;

namespace {

/// A dump of `size` bytes produced in reads of `step` bytes (a dump tool's pipe).
class DumpSource : public ByteSource {
public:
    DumpSource(std::size_t size, std::size_t step, unsigned seed = 9) : step_(step) {
        std::mt19937 rng(seed);
        data.resize(size);
        for (auto& c : data) c = static_cast<char>(rng());
    }
    std::size_t read(void* out, std::size_t n) override {
        const std::size_t take = std::min({n, step_, data.size() - pos_});
        std::memcpy(out, data.data() + pos_, take);
        pos_ += take;
        return take;
    }
    std::string data;

private:
    std::size_t step_;
    std::size_t pos_ = 0;
};

/// A dump tool that fails after some output.
class FailingSource : public ByteSource {
public:
    std::size_t read(void* out, std::size_t n) override {
        if (sent_) throw RuntimeError("pg_dump exited with status 1: pg_dump: error: connection lost");
        sent_ = true;
        std::memset(out, 'x', std::min<std::size_t>(n, 5));
        return std::min<std::size_t>(n, 5);
    }

private:
    bool sent_ = false;
};

struct Chunk {
    std::string name;
    std::int64_t size;
};

/// The entries of an uncompressed tar in `data`, read with libarchive directly.
std::vector<Chunk> tar_entries(const std::string& data) {
    std::vector<Chunk> out;
    archive* a = archive_read_new();
    archive_read_support_format_tar(a);
    REQUIRE(archive_read_open_memory(a, data.data(), data.size()) == ARCHIVE_OK);
    archive_entry* e;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) out.push_back({archive_entry_pathname(e), archive_entry_size(e)});
    archive_read_free(a);
    return out;
}

std::vector<Chunk> chunks_of(std::size_t size, std::size_t chunk, std::size_t step) {
    StringSink tar;
    DumpSource dump(size, step);
    TarWriter w(tar);
    CHECK(w.add_stream("notes.dump", dump, chunk) == size);
    w.finish();
    CHECK(w.stats().stream_bytes == size);
    CHECK(w.stats().files == 0);  // not state files
    return tar_entries(tar.s);
}

BackupManifest manifest_with_db(const std::string& state) {
    auto m = manifest_for({state});
    // Capture order: the database first, then the directory.
    m.components = {{"postgresql", "notes"}, {"path", state}};
    return m;
}

/// A consumer that records what it gets and when it was finished.
struct Recorder {
    StringSink sink;
    int finished = 0;
    SectionConsumer consumer() {
        return {&sink, [this] { ++finished; }};
    }
};

}  // namespace

TEST_CASE("a stream is chunked into fixed-size numbered entries", "[streams]") {
    SECTION("an exact multiple of the chunk size: no empty chunk after the last full one") {
        const auto c = chunks_of(30, 10, 3);
        REQUIRE(c.size() == 3);
        CHECK(c[0].name == "db/notes.dump.000000");
        CHECK(c[1].name == "db/notes.dump.000001");
        CHECK(c[2].name == "db/notes.dump.000002");
        for (const auto& x : c) CHECK(x.size == 10);
    }
    SECTION("one byte over: a last chunk of one byte") {
        const auto c = chunks_of(31, 10, 7);
        REQUIRE(c.size() == 4);
        CHECK(c[3].name == "db/notes.dump.000003");
        CHECK(c[3].size == 1);
    }
    SECTION("one byte under") {
        const auto c = chunks_of(29, 10, 29);
        REQUIRE(c.size() == 3);
        CHECK(c[2].size == 9);
    }
    SECTION("an empty stream is one empty chunk, so the section is always there") {
        const auto c = chunks_of(0, 10, 1);
        REQUIRE(c.size() == 1);
        CHECK(c[0].name == "db/notes.dump.000000");
        CHECK(c[0].size == 0);
    }
    SECTION("reads larger than the chunk size are split across chunks") {
        const auto c = chunks_of(25, 10, 1000);
        REQUIRE(c.size() == 3);
        CHECK(c[2].size == 5);
    }
}

TEST_CASE("stream sections are named safely", "[streams]") {
    CHECK(valid_section_name("notes.dump"));
    CHECK(valid_section_name("postgresql-notes_1.dump"));
    CHECK_FALSE(valid_section_name(""));
    CHECK_FALSE(valid_section_name(".hidden"));
    CHECK_FALSE(valid_section_name("a/b"));
    CHECK_FALSE(valid_section_name("a b"));
    CHECK(chunk_entry_name("notes.dump", 42) == "db/notes.dump.000042");
    const auto p = parse_chunk_entry_name("db/notes.dump.000042");
    REQUIRE(p);
    CHECK(p->section == "notes.dump");
    CHECK(p->index == 42);
    CHECK_FALSE(parse_chunk_entry_name("db/notes.dump.42"));
    CHECK_FALSE(parse_chunk_entry_name("db/notes.dump.00004x"));
    CHECK_FALSE(parse_chunk_entry_name("db/../x.000000"));
    CHECK_FALSE(parse_chunk_entry_name("state/notes.dump.000000"));
    StringSink tar;
    TarWriter w(tar);
    DumpSource dump(1, 1);
    CHECK_THROWS_AS(w.add_stream("../etc", dump, 10), std::invalid_argument);
    CHECK_THROWS_AS(w.add_stream("notes.dump", dump, 0), std::invalid_argument);
}

TEST_CASE("a blob with a database stream round trips, and `cat` joins the chunks by hand", "[streams]") {
    TempDir tmp;
    stdfs::create_directories(tmp / "src");
    write_file(tmp / "src/f", "file data\n");
    const auto m = manifest_with_db((tmp / "src").string());
    std::string dumped;  // what the dump tool produced (its source is gone after the backup)
    BlobWriteOptions o;
    o.level = 3;
    o.threads = 1;
    o.chunk_bytes = 64 * 1024;
    std::vector<std::string> order;
    o.streams.push_back({"postgresql", "notes", "notes.dump", [&]() -> std::unique_ptr<ByteSource> {
                             order.push_back("dump opened");
                             auto d = std::make_unique<DumpSource>(64 * 1024 * 3 + 17, 4096);
                             dumped = d->data;
                             return d;
                         }});
    FileSink sink(tmp / "b.tar.zst");
    const auto w = write_blob(m, sink, o);
    sink.close();
    REQUIRE(order == std::vector<std::string>{"dump opened"});
    CHECK(w.stream_bytes == dumped.size());
    CHECK(w.files == 2);  // the root and f: the chunks are not state files
    CHECK(w.bytes == 10);

    // Capture order in the archive: manifest, the dump, then state/0.
    const auto names = run("zstd -dc '" + (tmp / "b.tar.zst").string() + "' | tar -t");
    CHECK(names ==
          "bartl/manifest.json\ndb/notes.dump.000000\ndb/notes.dump.000001\ndb/notes.dump.000002\n"
          "db/notes.dump.000003\nstate/0/\nstate/0/f\n");
    // By hand: extract, then `cat db/notes.dump.*` (the shell sorts the glob).
    stdfs::create_directories(tmp / "out");
    run("zstd -dc '" + (tmp / "b.tar.zst").string() + "' | tar -x --warning=no-unknown-keyword -C '" +
        (tmp / "out").string() + "'");
    CHECK(run("cd '" + (tmp / "out").string() + "' && cat db/notes.dump.*") == dumped);
    const auto in_archive = BackupManifest::from_json(read_file(tmp / "out/bartl/manifest.json"));
    REQUIRE(in_archive.components.size() == 2);
    CHECK(in_archive.components[0].kind == "postgresql");
    CHECK(in_archive.components[1].kind == "path");

    stdfs::create_directories(tmp / "stage");
    Recorder rec;
    BlobReadOptions ro;
    ro.sections["notes.dump"] = rec.consumer();
    std::vector<std::uint64_t> file_bytes;  // what a restore's early writeback counts
    ro.on_file = [&](std::uint64_t b) { file_bytes.push_back(b); };
    FileSource src(tmp / "b.tar.zst");
    const auto r = extract_blob(src, w.blob_size, w.sha256, {tmp / "stage"}, {}, ro);
    CHECK(file_bytes == std::vector<std::uint64_t>{10});  // f alone: the dump's bytes went to its consumer
    CHECK(rec.sink.s == dumped);
    CHECK(rec.finished == 1);
    CHECK(r.section_bytes.at("notes.dump") == dumped.size());
    CHECK(r.files == 2);
    CHECK(read_file(tmp / "stage/f") == "file data\n");

    SECTION("a restore that does not ask for the database refuses the blob") {
        stdfs::remove_all(tmp / "stage2");
        stdfs::create_directories(tmp / "stage2");
        FileSource again(tmp / "b.tar.zst");
        CHECK_THROWS_WITH(extract_blob(again, w.blob_size, w.sha256, {tmp / "stage2"}),
                          Catch::Contains("rejected entry \"db/notes.dump.000000\": no database of this restore"));
    }
    SECTION("a restore that asks for a database the blob lacks refuses it") {
        stdfs::create_directories(tmp / "stage3");
        Recorder a, b;
        BlobReadOptions two;
        two.sections["notes.dump"] = a.consumer();
        two.sections["other.dump"] = b.consumer();
        FileSource again(tmp / "b.tar.zst");
        CHECK_THROWS_WITH(extract_blob(again, w.blob_size, w.sha256, {tmp / "stage3"}, {}, two),
                          Catch::Contains("the archive holds no db/other.dump.* entries"));
    }
}

TEST_CASE("a failing dump fails the backup with the dump tool's error", "[streams]") {
    TempDir tmp;
    stdfs::create_directories(tmp / "src");
    BlobWriteOptions o;
    o.threads = 1;
    o.streams.push_back({"postgresql", "notes", "notes.dump", [] { return std::make_unique<FailingSource>(); }});
    StringSink out;
    CHECK_THROWS_WITH(write_blob(manifest_with_db((tmp / "src").string()), out, o),
                      Catch::Contains("pg_dump: error: connection lost"));
    o.streams.clear();
    CHECK_THROWS_WITH(write_blob(manifest_with_db((tmp / "src").string()), out, o),
                      Catch::Contains("component postgresql:notes has no stream"));
}

TEST_CASE("the extractor refuses chunks out of order, with gaps, twice, or of the wrong type", "[streams][hostile]") {
    struct Case {
        const char* what;
        std::function<void(Builder&)> build;
        const char* message;
    };
    const std::vector<Case> cases = {
        {"a gap", [](Builder& b) { b.file("db/notes.dump.000000", "a").file("db/notes.dump.000002", "c"); },
         "expected chunk 1 of db/notes.dump.*"},
        {"a duplicate", [](Builder& b) { b.file("db/notes.dump.000000", "a").file("db/notes.dump.000000", "a"); },
         "chunk 0 of db/notes.dump.* appears again"},
        {"out of order", [](Builder& b) { b.file("db/notes.dump.000001", "b").file("db/notes.dump.000000", "a"); },
         "expected chunk 0 of db/notes.dump.*"},
        {"the section twice",
         [](Builder& b) { b.file("db/notes.dump.000000", "a").dir("state/0/").file("db/notes.dump.000001", "b"); },
         "db/notes.dump.* appears a second time"},
        {"a symlink chunk", [](Builder& b) { b.symlink("db/notes.dump.000000", "/etc/shadow"); },
         "a dump chunk must be a regular file"},
        {"a hard link chunk",
         [](Builder& b) { b.dir("state/0/").file("state/0/f", "x").hardlink("db/notes.dump.000000", "state/0/f"); },
         "a dump chunk must be a regular file"},
        {"a chunk number too short", [](Builder& b) { b.file("db/notes.dump.00", "a"); },
         "must be named db/NAME.NNNNNN"},
    };
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.what) {
            TempDir tmp;
            stdfs::create_directories(tmp / "stage");
            Builder b(tmp / "b.tar.zst");
            b.manifest();
            c.build(b);
            const auto [size, sha] = b.finish();
            Recorder rec;
            BlobReadOptions ro;
            ro.label = "backup hostile";
            ro.sections["notes.dump"] = rec.consumer();
            FileSource src(tmp / "b.tar.zst");
            CHECK_THROWS_WITH(extract_blob(src, size, sha, {tmp / "stage"}, {}, ro),
                              Catch::Contains("backup hostile: rejected entry") && Catch::Contains(c.message));
            CHECK(list_tree(tmp / "stage").size() <= 1);
        }
    }
}

TEST_CASE("a consumer's failure stops the restore with its error", "[streams]") {
    TempDir tmp;
    stdfs::create_directories(tmp / "stage");
    Builder b(tmp / "b.tar.zst");
    b.manifest().file("db/notes.dump.000000", "rows");
    const auto [size, sha] = b.finish();
    StringSink sink;
    BlobReadOptions ro;
    ro.sections["notes.dump"] = {&sink, [] { throw RuntimeError("pg_restore exited with status 1: bad dump"); }};
    FileSource src(tmp / "b.tar.zst");
    CHECK_THROWS_WITH(extract_blob(src, size, sha, {tmp / "stage"}, {}, ro), Catch::Contains("pg_restore exited"));
    CHECK(sink.s == "rows");
}
