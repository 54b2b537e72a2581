// What a sidecar's signature says under each trust policy (ops/signing.hpp), with keys made by
// ssh-keygen; trusted keys errors at FILE:LINE:COLUMN.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <functional>

#include "config/config.hpp"
#include "core/error.hpp"
#include "ops/signing.hpp"
#include "../test_util.hpp"

using namespace bartl;
using namespace bartl::test;

namespace {

SshSigningKey keygen(const TempDir& tmp, const std::string& name) {
    const auto key = tmp / name;
    const int rc = std::system(("ssh-keygen -q -t ed25519 -N '' -C " + name + "@host -f '" + key.string() + "'").c_str());
    REQUIRE(WIFEXITED(rc));
    REQUIRE(WEXITSTATUS(rc) == 0);
    return parse_openssh_private_key(read_file(key));
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

const std::string head = "[app]\nname = \"notes\"\nversion = \"1.0.0\"\nexec = [\"/bin/true\"]\n[state]\npaths = [\"/var/lib/notes\"]\n";

}  // namespace

TEST_CASE("check_signature: signer text and refusals under each policy", "[signing]") {
    TempDir tmp;
    const auto a = keygen(tmp, "a");
    const auto b = keygen(tmp, "b");
    const std::string sidecar = "{\"id\": \"1a2b3c4d\"}\n";
    const auto by_a = sshsig_sign(a, sidecar, kSignatureNamespace);
    const auto by_b = sshsig_sign(b, sidecar, kSignatureNamespace);
    const auto other_ns = sshsig_sign(a, sidecar, "git");
    const TrustPolicy report{{a.pub}, false, true};
    const TrustPolicy enforce{{a.pub}, true, false};
    const TrustPolicy unchecked{{}, false, true};
    const auto fa = a.pub.fingerprint(), fb = b.pub.fingerprint();

    CHECK(check_signature("1a2b3c4d", sidecar, by_a, report) == "a@host " + fa);
    CHECK(check_signature("1a2b3c4d", sidecar, by_a, enforce) == "a@host " + fa);
    CHECK(check_signature("1a2b3c4d", sidecar, by_a, unchecked) == fa + " unchecked");
    CHECK(check_signature("1a2b3c4d", sidecar, by_b, report) == fb + " UNTRUSTED");
    // Unsigned: "UNSIGNED" while trusted keys are configured (a restore refuses it), else "".
    CHECK(check_signature("1a2b3c4d", sidecar, std::nullopt, report) == "UNSIGNED");
    CHECK(check_signature("1a2b3c4d", sidecar, std::nullopt, unchecked).empty());
    CHECK(check_signature("1a2b3c4d", sidecar, std::nullopt, report, fa) ==
          "INVALID: the signature file is missing although its sidecar says " + fa + " signed it");
    CHECK(check_signature("1a2b3c4d", sidecar + " ", by_a, report).rfind("INVALID: the signature by " + fa, 0) == 0);
    CHECK(check_signature("1a2b3c4d", sidecar, other_ns, report) ==
          "INVALID: the signature is for namespace \"git\", not \"bartl-backup\"");

    CHECK(error_of([&] { check_signature("1a2b3c4d", sidecar, std::nullopt, enforce); })
              .rfind("backup 1a2b3c4d is not signed", 0) == 0);
    CHECK(error_of([&] { check_signature("1a2b3c4d", sidecar, by_b, enforce); }) ==
          "backup 1a2b3c4d is signed by " + fb +
              ", which is not a trusted key ([backup] trusted_keys, trusted_keys_file): not accepted");
    CHECK(error_of([&] { check_signature("1a2b3c4d", "{}", by_a, enforce); })
              .rfind("backup 1a2b3c4d: its sidecar's signature is not valid: the signature by " + fa, 0) == 0);
    CHECK_THROWS_AS(check_signature("x", sidecar, other_ns, enforce), IntegrityError);
}

TEST_CASE("load_trusted_keys: keys from both sources; errors at FILE:LINE:COLUMN", "[signing]") {
    TempDir tmp;
    const auto a = keygen(tmp, "a");
    const auto b = keygen(tmp, "b");
    const auto file = tmp / "allowed_signers";
    write_file(file, "# ops\nbartl " + b.pub.line() + "\n");
    const auto c = parse_config(head + "[backup]\ntrusted_keys = [\"" + a.pub.line() + "\"]\ntrusted_keys_file = \"" +
                                    file.string() + "\"\n",
                                "notes.toml");
    const auto keys = load_trusted_keys(c);
    REQUIRE(keys.size() == 2);
    CHECK(keys[0].key == a.pub.key);
    CHECK(keys[1].key == b.pub.key);
    CHECK(keys[1].comment == "b@host");
    const auto p = trust_policy(c);
    CHECK(p.enforce);
    CHECK_FALSE(p.report);
    CHECK_FALSE(reporting_policy(c).enforce);
    CHECK_FALSE(trust_policy(parse_config(head, "notes.toml")).enforce);

    write_file(file, "bartl " + b.pub.line() + "\nbartl ssh-rsa AAAAB3NzaC1yc2E= x\n");
    CHECK(error_of([&] { load_trusted_keys(c); }).rfind(file.string() + ":2:7: ", 0) == 0);
    write_file(file, "# nobody\n");
    CHECK(error_of([&] { load_trusted_keys(c); }).find("holds no ssh-ed25519 key") != std::string::npos);
    std::filesystem::remove(file);
    CHECK(error_of([&] { load_trusted_keys(c); }) ==
          "notes.toml:9:21: [backup] trusted_keys_file " + file.string() + ": no such file");
    CHECK(error_of([&] {
              load_trusted_keys(parse_config(head + "[backup]\ntrusted_keys = [\"ssh-ed25519 AAAA\"]\n", "notes.toml"));
          }).rfind("notes.toml:8:17: [backup] trusted_keys[0]: ", 0) == 0);
}
