// The age stages against the real `age`, `age-keygen` and `ssh-keygen`: what bartl encrypts the
// age tool opens and the other way round, X25519 and SSH ed25519 keys, several recipients, and
// every way a ciphertext can be unusable (wrong identity, truncated, a flipped byte in the
// header, the body or the last chunk) as an IntegrityError, so a restore moves on to an older
// backup.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "blob/age_stage.hpp"
#include "blob/blob.hpp"
#include "blob_test_util.hpp"
#include "core/error.hpp"
#include "../string_streams.hpp"

using namespace bartl;
using namespace bartl::test;

namespace {

/// 3 MiB of half text, half noise: beyond age's 64 KiB chunks and our 1 MiB pipes.
std::string payload(std::size_t n = 3 << 20) {
    std::mt19937 rng(13);
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = (i / 4096) % 2 ? char(rng()) : char('a' + rng() % 26);
    return s;
}

std::string q(const stdfs::path& p) { return "'" + p.string() + "'"; }

/// A key pair made by age-keygen: the identity file and its recipient ("age1...").
struct AgeKey {
    stdfs::path identity;
    std::string recipient;
};

AgeKey age_key(const TempDir& tmp, const std::string& name) {
    const auto file = tmp / name;
    run("age-keygen -o " + q(file) + " 2>/dev/null");
    std::string r = run("age-keygen -y " + q(file));
    while (!r.empty() && r.back() == '\n') r.pop_back();
    return {file, r};
}

/// An ed25519 key made by ssh-keygen: the private key file and its public key line.
AgeKey ssh_key(const TempDir& tmp, const std::string& name) {
    const auto file = tmp / name;
    run("ssh-keygen -q -t ed25519 -N '' -C bartl-test -f " + q(file));
    std::string r = read_file(file.string() + ".pub");
    while (!r.empty() && r.back() == '\n') r.pop_back();
    return {file, r};
}

std::string encrypt(const std::string& data, const AgeRecipients& to) {
    StringSink out;
    AgeEncryptor age(out, to, CancelToken::process());
    for (std::size_t pos = 0; pos < data.size(); pos += 100000)
        age.write(data.data() + pos, std::min<std::size_t>(100000, data.size() - pos));
    age.finish();
    return out.s;
}

std::string decrypt(const std::string& cipher, const std::vector<stdfs::path>& identities) {
    StringSource in(cipher, 7001);
    AgeDecryptor age(in, identities, "backup t", CancelToken::process());
    std::string buf(65536, '\0'), out;
    for (;;) {
        const std::size_t n = age.read(buf.data(), buf.size());
        if (n == 0) return out;
        out.append(buf.data(), n);
    }
}

}  // namespace

TEST_CASE("what the encryptor writes the age tool decrypts, and the other way round", "[stages][age]") {
    TempDir tmp;
    const auto key = age_key(tmp, "key.txt");
    const auto data = payload();
    const auto cipher = encrypt(data, {{key.recipient}, {}});
    CHECK(cipher.rfind("age-encryption.org/v1\n", 0) == 0);
    CHECK(cipher.size() > data.size());
    write_file(tmp / "c.age", cipher);
    CHECK(run("age -d -i " + q(key.identity) + " " + q(tmp / "c.age")) == data);
    CHECK(decrypt(cipher, {key.identity}) == data);

    write_file(tmp / "plain", data);
    run("age -r " + key.recipient + " -o " + q(tmp / "by-age.age") + " " + q(tmp / "plain"));
    CHECK(decrypt(read_file(tmp / "by-age.age"), {key.identity}) == data);
}

TEST_CASE("SSH ed25519 keys, recipient files and several recipients work", "[stages][age]") {
    TempDir tmp;
    const auto operator_key = age_key(tmp, "offline.txt");
    const auto host = ssh_key(tmp, "id_ed25519");
    const std::string data = "state\n";
    SECTION("an ssh-ed25519 recipient, decrypted with the OpenSSH private key, by us and by age") {
        const auto cipher = encrypt(data, {{host.recipient}, {}});
        CHECK(decrypt(cipher, {host.identity}) == data);
        write_file(tmp / "c.age", cipher);
        CHECK(run("age -d -i " + q(host.identity) + " " + q(tmp / "c.age")) == data);
    }
    SECTION("two recipients: each identity alone decrypts") {
        const auto cipher = encrypt(data, {{operator_key.recipient, host.recipient}, {}});
        CHECK(decrypt(cipher, {operator_key.identity}) == data);
        CHECK(decrypt(cipher, {host.identity}) == data);
    }
    SECTION("a recipients file (age -R)") {
        write_file(tmp / "recipients", "# offline key\n" + operator_key.recipient + "\n" + host.recipient + "\n");
        const auto cipher = encrypt(data, {{}, {tmp / "recipients"}});
        CHECK(decrypt(cipher, {host.identity}) == data);
    }
    SECTION("several identities: the one that matches is used") {
        const auto cipher = encrypt(data, {{host.recipient}, {}});
        CHECK(decrypt(cipher, {operator_key.identity, host.identity}) == data);
    }
}

TEST_CASE("an unusable ciphertext is an IntegrityError quoting age", "[stages][age]") {
    TempDir tmp;
    const auto key = age_key(tmp, "key.txt");
    const auto other = age_key(tmp, "other.txt");
    const auto data = payload(1 << 20);
    const auto cipher = encrypt(data, {{key.recipient}, {}});
    const auto header_end = cipher.find("\n---");
    REQUIRE(header_end != std::string::npos);
    auto refused = [&](const std::string& bad, const std::vector<stdfs::path>& ids = {}) {
        const auto used = ids.empty() ? std::vector<stdfs::path>{key.identity} : ids;
        CHECK_THROWS_AS(decrypt(bad, used), IntegrityError);
        // The message names the identities tried, and leaves out age's "please report" line.
        CHECK_THROWS_WITH(decrypt(bad, used),
                          Catch::StartsWith("backup t: cannot decrypt with the identities " + used.front().string() +
                                            ": age -d exited with status 1: ") &&
                              Catch::Contains("age: error") && !Catch::Contains("filippo.io/age/report"));
    };
    SECTION("wrong identity") {
        refused(cipher, {other.identity});
        CHECK_THROWS_WITH(decrypt(cipher, {other.identity}), Catch::Contains("no identity matched"));
    }
    SECTION("wrong identities, all named") {
        const auto third = age_key(tmp, "third.txt");
        CHECK_THROWS_WITH(decrypt(cipher, {other.identity, third.identity}),
                          Catch::Contains("cannot decrypt with the identities " + other.identity.string() + ", " +
                                          third.identity.string() + ": "));
    }
    SECTION("truncated in the body") { refused(cipher.substr(0, cipher.size() / 2)); }
    SECTION("truncated by one byte") { refused(cipher.substr(0, cipher.size() - 1)); }
    SECTION("truncated to the header") { refused(cipher.substr(0, header_end + 1)); }
    SECTION("a flipped byte in the header") {
        auto bad = cipher;
        bad[header_end / 2] ^= 0x01;
        refused(bad);
    }
    SECTION("a flipped byte in the header MAC") {
        auto bad = cipher;
        bad[header_end + 10] ^= 0x01;
        refused(bad);
    }
    SECTION("a flipped byte in the body") {
        auto bad = cipher;
        bad[cipher.size() / 2] ^= 0x01;
        refused(bad);
    }
    SECTION("a flipped byte in the last chunk") {
        auto bad = cipher;
        bad[cipher.size() - 5] ^= 0x01;
        refused(bad);
    }
    SECTION("not an age file") { refused(data); }
    SECTION("empty") { refused(""); }
}

TEST_CASE("the age stages refuse to start without keys, and name age's own refusals", "[stages][age]") {
    TempDir tmp;
    StringSink out;
    StringSource in("x");
    CHECK_THROWS_AS(AgeEncryptor(out, {}, CancelToken::process()), std::invalid_argument);
    CHECK_THROWS_AS(AgeDecryptor(in, {}, "backup t", CancelToken::process()), std::invalid_argument);
    SECTION("a recipient age does not accept") {
        CHECK_THROWS_WITH(encrypt(payload(1 << 20), {{"age1notakey"}, {}}),
                          Catch::StartsWith("age -r exited with status 1: ") && Catch::Contains("age1notakey"));
    }
    SECTION("a missing recipients file") {
        CHECK_THROWS_WITH(encrypt("x", {{}, {tmp / "missing"}}),
                          Catch::StartsWith("age -r exited with status 1: ") && Catch::Contains("missing"));
    }
    SECTION("a missing identity file") {
        const auto key = age_key(tmp, "key.txt");
        CHECK_THROWS_WITH(decrypt(encrypt("x", {{key.recipient}, {}}), {tmp / "no-such-identity"}),
                          Catch::StartsWith("backup t: cannot decrypt with the identities " +
                                            (tmp / "no-such-identity").string() + ": age -d exited with status 1: ") &&
                              Catch::Contains("no-such-identity"));
    }
}

TEST_CASE("an encrypted blob round trips and opens by hand with age, zstd and tar", "[blob][age]") {
    TempDir tmp;
    const auto key = age_key(tmp, "key.txt");
    stdfs::create_directories(tmp / "src/sub");
    const auto big = payload();
    write_file(tmp / "src/sub/big", big);
    write_file(tmp / "src/small", "small\n");
    auto m = manifest_for({(tmp / "src").string()});
    m.encryption = "age";
    BlobWriteOptions o;
    o.threads = 2;
    o.encrypt_to = AgeRecipients{{key.recipient}, {}};
    const auto blob = tmp / "b.tar.zst.age";
    FileSink sink(blob);
    const auto w = write_blob(m, sink, o);
    sink.close();
    // The sidecar's size and SHA-256 describe the stored (encrypted) bytes: sha256sum checks them.
    CHECK(w.blob_size == stdfs::file_size(blob));
    CHECK(run("sha256sum " + q(blob)).substr(0, 64) == w.sha256);
    CHECK(read_file(blob).rfind("age-encryption.org/v1\n", 0) == 0);
    CHECK(run("age -d -i " + q(key.identity) + " " + q(blob) + " | zstd -dc | tar -t") ==
          "bartl/manifest.json\nstate/0/\nstate/0/small\nstate/0/sub/\nstate/0/sub/big\n");
    stdfs::create_directories(tmp / "by-hand");
    run("age -d -i " + q(key.identity) + " " + q(blob) + " | zstd -dc | tar -x --warning=no-unknown-keyword -C " +
        q(tmp / "by-hand"));
    CHECK(read_file(tmp / "by-hand/state/0/sub/big") == big);

    stdfs::create_directories(tmp / "stage");
    BlobReadOptions ro;
    ro.label = "backup b";
    ro.encrypted = true;
    ro.identities = {key.identity};
    {
        FileSource src(blob);
        const auto r = extract_blob(src, w.blob_size, w.sha256, {tmp / "stage"}, {}, ro);
        CHECK(r.archive_manifest.encryption == std::optional<std::string>("age"));
        CHECK(read_file(tmp / "stage/sub/big") == big);
        CHECK(r.bytes == big.size() + 6);
    }
    SECTION("check_blob needs no identity") {
        FileSource src(blob);
        CHECK_NOTHROW(check_blob(src, w.blob_size, w.sha256));
    }
    SECTION("extracting without identities is refused before anything is read") {
        stdfs::create_directories(tmp / "stage2");
        BlobReadOptions none = ro;
        none.identities.clear();
        FileSource src(blob);
        CHECK_THROWS_AS(extract_blob(src, w.blob_size, w.sha256, {tmp / "stage2"}, {}, none), std::invalid_argument);
    }
    SECTION("a wrong identity is an IntegrityError, staging stays for the caller to discard") {
        stdfs::create_directories(tmp / "stage3");
        BlobReadOptions wrong = ro;
        wrong.identities = {age_key(tmp, "other.txt").identity};
        FileSource src(blob);
        CHECK_THROWS_WITH(extract_blob(src, w.blob_size, w.sha256, {tmp / "stage3"}, {}, wrong),
                          Catch::Contains("backup b: cannot decrypt") && Catch::Contains("no identity matched"));
    }
    SECTION("a flipped byte in the last chunk with a matching SHA-256 is still refused by age") {
        auto bad = read_file(blob);
        bad[bad.size() - 3] ^= 0x01;
        write_file(tmp / "bad.age", bad);
        const auto sha = run("sha256sum " + q(tmp / "bad.age")).substr(0, 64);
        stdfs::create_directories(tmp / "stage4");
        FileSource src(tmp / "bad.age");
        CHECK_THROWS_AS(extract_blob(src, bad.size(), sha, {tmp / "stage4"}, {}, ro), IntegrityError);
    }
}

TEST_CASE("a blob made by hand with tar, zstd and age -r is restored", "[blob][age]") {
    TempDir tmp;
    const auto key = ssh_key(tmp, "id_ed25519");
    auto m = manifest_for({"/var/lib/notes"});
    m.encryption = "age";
    stdfs::create_directories(tmp / "tree/bartl");
    stdfs::create_directories(tmp / "tree/state/0/d");
    write_file(tmp / "tree/bartl/manifest.json", m.to_archive_json());
    write_file(tmp / "tree/state/0/d/f", "by hand\n");
    const auto blob = tmp / "h.tar.zst.age";
    run("tar -cf - -C " + q(tmp / "tree") + " bartl/manifest.json state/0 | zstd -q -3 | age -r '" + key.recipient +
        "' -o " + q(blob));
    const auto sha = run("sha256sum " + q(blob)).substr(0, 64);
    stdfs::create_directories(tmp / "stage");
    BlobReadOptions ro;
    ro.encrypted = true;
    ro.identities = {key.identity};
    FileSource src(blob);
    const auto r = extract_blob(src, stdfs::file_size(blob), sha, {tmp / "stage"}, {}, ro);
    CHECK(read_file(tmp / "stage/d/f") == "by hand\n");
    CHECK(r.archive_manifest.app == "notes");
}
