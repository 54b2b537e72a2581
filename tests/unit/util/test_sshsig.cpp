// SSHSIG signatures against the reference: keys made by ssh-keygen -t ed25519, signatures
// made by ssh-keygen -Y sign verified here and ours verified by ssh-keygen -Y verify.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <functional>
#include <sys/wait.h>

#include "../test_util.hpp"
#include "util/sshsig.hpp"

using namespace bartl;
using bartl::test::read_file;
using bartl::test::TempDir;
using bartl::test::write_file;
namespace stdfs = std::filesystem;

namespace {

/// Runs a shell command line; its exit status.
int sh(const std::string& cmd) {
    const int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/// A key pair made by ssh-keygen in `dir`: dir/NAME and dir/NAME.pub.
stdfs::path keygen(const TempDir& dir, const std::string& name) {
    const auto key = dir / name;
    REQUIRE(sh("ssh-keygen -q -t ed25519 -N '' -C '" + name + "@test' -f '" + key.string() + "'") == 0);
    return key;
}

/// `message` signed by ssh-keygen -Y sign with `key` in namespace `ns`.
std::string ssh_sign(const TempDir& dir, const stdfs::path& key, const std::string& message, const std::string& ns) {
    const auto msg = dir / "message";
    write_file(msg, message);
    stdfs::remove(dir / "message.sig");
    REQUIRE(sh("ssh-keygen -q -Y sign -f '" + key.string() + "' -n " + ns + " '" + msg.string() + "' 2>/dev/null") == 0);
    return read_file(dir / "message.sig");
}

std::string what(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("an ssh-keygen key signs byte for byte what ssh-keygen -Y sign writes, and ssh-keygen verifies it") {
    TempDir dir;
    const auto key = keygen(dir, "signer");
    const auto k = parse_openssh_private_key(read_file(key));
    const auto pub = parse_ssh_public_key(read_file(stdfs::path(key.string() + ".pub")));
    CHECK(k.pub.key == pub.key);
    CHECK(k.pub.comment == "signer@test");
    CHECK(pub.comment == "signer@test");
    CHECK(pub.line() + "\n" == read_file(stdfs::path(key.string() + ".pub")));
    // ssh-keygen -l prints "256 SHA256:... comment (ED25519)".
    REQUIRE(sh("ssh-keygen -l -f '" + key.string() + ".pub' > '" + (dir / "fp").string() + "'") == 0);
    CHECK(read_file(dir / "fp").find(" " + pub.fingerprint() + " ") != std::string::npos);

    const std::string message = "{\n  \"blob\": {\"sha256\": \"00ff\"}\n}\n";
    const auto ours = sshsig_sign(k, message, kSignatureNamespace);
    CHECK(ours == ssh_sign(dir, key, message, kSignatureNamespace));  // Ed25519 is deterministic
    write_file(dir / "message.sig", ours);
    write_file(dir / "allowed", "bartl " + pub.line() + "\n");
    CHECK(sh("ssh-keygen -Y verify -f '" + (dir / "allowed").string() + "' -I bartl -n bartl-backup -s '" +
             (dir / "message.sig").string() + "' < '" + (dir / "message").string() + "' >/dev/null 2>&1") == 0);
    CHECK(sshsig_verify(ours, message, kSignatureNamespace).key == pub.key);
}

TEST_CASE("sshsig_verify: what ssh-keygen -Y sign wrote verifies; every alteration is named") {
    TempDir dir;
    const auto key = keygen(dir, "signer");
    const auto other = keygen(dir, "other");
    const auto pub = parse_ssh_public_key(read_file(stdfs::path(key.string() + ".pub")));
    const std::string message = "the sidecar\n";
    const auto sig = ssh_sign(dir, key, message, "bartl-backup");

    SECTION("valid") {
        const auto signer = sshsig_verify(sig, message, "bartl-backup");
        CHECK(signer.key == pub.key);
        CHECK(signer.fingerprint() == pub.fingerprint());
    }
    SECTION("another message") {
        CHECK(what([&] { sshsig_verify(sig, "the sidecar!\n", "bartl-backup"); })
                  .find("does not match the signed bytes") != std::string::npos);
    }
    SECTION("wrong namespace") {
        const auto git = ssh_sign(dir, key, message, "git");
        CHECK(what([&] { sshsig_verify(git, message, "bartl-backup"); }) ==
              "the signature is for namespace \"git\", not \"bartl-backup\"");
    }
    SECTION("wrong key: valid, but the signer is another key, which find_key does not trust") {
        const auto by_other = ssh_sign(dir, other, message, "bartl-backup");
        const auto signer = sshsig_verify(by_other, message, "bartl-backup");
        CHECK(signer.key != pub.key);
        CHECK_FALSE(find_key({pub}, signer));
        CHECK(find_key({pub}, sshsig_verify(sig, message, "bartl-backup"))->comment == "signer@test");
    }
    SECTION("a flipped byte anywhere in the signature blob is refused") {
        // Decode, flip each byte in turn, re-encode: every position must fail.
        const auto b = sig.find('\n') + 1;
        const auto e = sig.find("-----END");
        std::string b64;
        for (char c : sig.substr(b, e - b))
            if (c != '\n') b64 += c;
        REQUIRE(b64.size() > 100);
        int refused = 0, positions = 0;
        for (std::size_t i = 0; i + 4 <= b64.size(); i += 3) {
            std::string alt = b64;
            alt[i] = alt[i] == 'A' ? 'B' : 'A';
            ++positions;
            if (what([&] { sshsig_verify("-----BEGIN SSH SIGNATURE-----\n" + alt + "\n-----END SSH SIGNATURE-----\n",
                                         message, "bartl-backup"); }) != "(no error)")
                ++refused;
        }
        CHECK(refused == positions);
    }
    SECTION("truncated") {
        CHECK(what([&] { sshsig_verify(sig.substr(0, sig.size() / 2), message, "bartl-backup"); }).find("truncated") !=
              std::string::npos);
        // Cut inside the blob but keep the armor: the wire reader names the cut.
        const auto b = sig.find('\n') + 1;
        const auto cut = "-----BEGIN SSH SIGNATURE-----\n" + sig.substr(b, 68) + "\n-----END SSH SIGNATURE-----\n";
        CHECK(what([&] { sshsig_verify(cut, message, "bartl-backup"); }).find("truncated") != std::string::npos);
    }
    SECTION("not a signature") {
        CHECK(what([&] { sshsig_verify("", message, "bartl-backup"); }).find("not an SSH signature") !=
              std::string::npos);
        CHECK(what([&] { sshsig_verify(message, message, "bartl-backup"); }).find("not an SSH signature") !=
              std::string::npos);
    }
}

TEST_CASE("parse_openssh_private_key refuses what it cannot sign with") {
    TempDir dir;
    SECTION("a passphrase-protected key") {
        REQUIRE(sh("ssh-keygen -q -t ed25519 -N secret -f '" + (dir / "k").string() + "'") == 0);
        CHECK(what([&] { parse_openssh_private_key(read_file(dir / "k")); }).find("passphrase") != std::string::npos);
    }
    SECTION("an RSA key") {
        REQUIRE(sh("ssh-keygen -q -t rsa -b 2048 -N '' -f '" + (dir / "k").string() + "'") == 0);
        CHECK(what([&] { parse_openssh_private_key(read_file(dir / "k")); }).find("ssh-rsa key") != std::string::npos);
    }
    SECTION("a public key or a damaged file") {
        const auto key = keygen(dir, "k");
        CHECK(what([&] { parse_openssh_private_key(read_file(stdfs::path(key.string() + ".pub"))); })
                  .find("not an OpenSSH private key") != std::string::npos);
        auto text = read_file(key);
        text[60] = text[60] == 'A' ? 'B' : 'A';
        CHECK(what([&] { parse_openssh_private_key(text); }) != "(no error)");
    }
}

TEST_CASE("parse_trusted_keys reads allowed_signers and authorized_keys lines") {
    TempDir dir;
    const auto a = parse_ssh_public_key(read_file(stdfs::path(keygen(dir, "a").string() + ".pub")));
    const auto b = parse_ssh_public_key(read_file(stdfs::path(keygen(dir, "b").string() + ".pub")));
    const auto c = parse_ssh_public_key(read_file(stdfs::path(keygen(dir, "c").string() + ".pub")));
    const auto keys = parse_trusted_keys("# operators\n\nbartl " + a.line() + "\n" + b.line() + "\r\n" +
                                         "ops@example.com namespaces=\"git,bartl-backup\" " + c.line() + "\n" +
                                         "x namespaces=\"git\" " + a.line() + "\n");
    REQUIRE(keys.size() == 3);
    CHECK(keys[0].key.key == a.key);
    CHECK(keys[0].key.comment == "a@test");
    CHECK(keys[0].line == 3);
    CHECK(keys[1].key.key == b.key);
    CHECK(keys[1].key.comment == "b@test");
    CHECK(keys[2].key.key == c.key);
    CHECK(what([&] { parse_trusted_keys("\nbartl ssh-rsa AAAAB3NzaC1yc2E= x\n"); }).rfind("2:7: ", 0) == 0);
    CHECK(what([&] { parse_trusted_keys("just words\n"); }).rfind("1:1: no ssh-ed25519 key", 0) == 0);
    CHECK(what([&] { parse_trusted_keys("cert-authority " + a.line()); }).find("cert-authority") != std::string::npos);
    // A validity period ssh-keygen -Y verify enforces is never silently ignored.
    CHECK(what([&] { parse_trusted_keys("# ok\nbartl valid-before=\"20200101\" " + a.line()); })
              .rfind("2:7: valid-before: bartl does not check a key's validity period", 0) == 0);
    CHECK(what([&] { parse_trusted_keys("bartl namespaces=\"bartl-backup\",valid-after=\"20990101\" " + a.line()); })
              .rfind("1:7: valid-after: ", 0) == 0);
    CHECK(what([&] { parse_trusted_keys("ssh-ed25519 AAAA!!!"); }).find("not base64") != std::string::npos);
}

TEST_CASE("private_key_has_passphrase tells a protected key from a plain one") {
    TempDir dir;
    const auto plain = keygen(dir, "plain");
    CHECK_FALSE(private_key_has_passphrase(read_file(plain)));
    const auto ecdsa = dir / "ecdsa";
    REQUIRE(sh("ssh-keygen -q -t ecdsa -N '' -f '" + ecdsa.string() + "'") == 0);
    CHECK_FALSE(private_key_has_passphrase(read_file(ecdsa)));
    const auto locked = dir / "locked";
    REQUIRE(sh("ssh-keygen -q -t ed25519 -N 'secret words' -f '" + locked.string() + "'") == 0);
    CHECK(private_key_has_passphrase(read_file(locked)));
    const auto pem = dir / "pem";
    REQUIRE(sh("ssh-keygen -q -t ecdsa -m PEM -N 'secret words' -f '" + pem.string() + "'") == 0);
    CHECK(private_key_has_passphrase(read_file(pem)));
    CHECK_FALSE(private_key_has_passphrase(read_file(stdfs::path(plain.string() + ".pub"))));
    CHECK_FALSE(private_key_has_passphrase("-----BEGIN OPENSSH PRIVATE KEY-----\n!!!\n-----END OPENSSH PRIVATE KEY-----\n"));
    CHECK_FALSE(private_key_has_passphrase(""));
}
