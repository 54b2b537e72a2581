#include "ops/signing.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl {

namespace {

std::optional<std::string> read_text(const std::filesystem::path& file) {
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec)) return std::nullopt;  // opens, but reads nothing
    std::ifstream in(file, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

/// Why read_text() of `file` failed, for messages.
std::string unreadable(const std::filesystem::path& file) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) return "no such file";
    if (std::filesystem::is_directory(file, ec)) return "is a directory";
    return "cannot be read (permission denied)";
}

}  // namespace

std::optional<std::filesystem::path> signing_key_credential() {
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (!dir || !*dir) return std::nullopt;
    auto f = std::filesystem::path(dir) / kSigningKeyCredential;
    if (!std::filesystem::exists(f)) return std::nullopt;
    return f;
}

std::optional<SshSigningKey> load_signing_key(const Config& config) {
    auto file = signing_key_credential();
    std::string what;
    if (file) what = fmt::format("the systemd credential {} ({})", kSigningKeyCredential, file->string());
    if (!file && config.signing_key_file) {
        file = config.signing_key_file;
        what = fmt::format("[backup] signing_key_file {}", file->string());
    }
    if (!file) return std::nullopt;
    const auto text = read_text(*file);
    if (!text)
        throw RuntimeError(fmt::format("cannot read the signing key, {}: {}", what, unreadable(*file)));
    try {
        return parse_openssh_private_key(*text);
    } catch (const std::invalid_argument& e) {
        throw RuntimeError(fmt::format("the signing key, {}: {}", what, e.what()));
    }
}

std::vector<SshPublicKey> load_trusted_keys(const Config& config) {
    std::vector<SshPublicKey> out;
    for (std::size_t i = 0; i < config.trusted_keys.size(); ++i) {
        const auto label = fmt::format("[backup] trusted_keys[{}]", i);
        try {
            out.push_back(parse_ssh_public_key(config.trusted_keys[i]));
        } catch (const std::invalid_argument& e) {
            throw ConfigError(fmt::format("{}: {}: {}", config.where(label), label, e.what()));
        }
    }
    if (config.trusted_keys_file) {
        const auto& f = *config.trusted_keys_file;
        const auto text = read_text(f);
        if (!text)
            throw ConfigError(fmt::format("{}: [backup] trusted_keys_file {}: {}",
                                          config.where("[backup] trusted_keys_file"), f.string(), unreadable(f)));
        try {
            const auto lines = parse_trusted_keys(*text);
            if (lines.empty())
                throw ConfigError(fmt::format("{}: [backup] trusted_keys_file {} holds no ssh-ed25519 key for "
                                              "namespace bartl-backup: no backup could be restored",
                                              config.where("[backup] trusted_keys_file"), f.string()));
            for (const auto& l : lines) out.push_back(l.key);
        } catch (const std::invalid_argument& e) {
            throw ConfigError(fmt::format("{}:{}", f.string(), e.what()));
        }
    }
    return out;
}

TrustPolicy trust_policy(const Config& config, bool report) {
    TrustPolicy p;
    p.trusted = load_trusted_keys(config);
    p.enforce = config.requires_signature();
    p.report = report;
    return p;
}

TrustPolicy reporting_policy(const Config& config) {
    auto p = trust_policy(config, true);
    p.enforce = false;
    return p;
}

std::string check_signature(const std::string& id, const std::string& sidecar,
                            const std::optional<std::string>& signature, const TrustPolicy& policy,
                            const std::optional<std::string>& named) {
    if (!signature) {
        const std::string lost = named ? fmt::format(" although its sidecar says {} signed it", *named) : "";
        if (policy.enforce)
            throw IntegrityError(fmt::format("backup {} is not signed (no .json.sig beside its sidecar{}), and "
                                             "[backup] trusted_keys requires a signature by a trusted key: not "
                                             "accepted",
                                             id, lost));
        if (named) return fmt::format("INVALID: the signature file is missing{}", lost);
        // With trusted keys set a restore refuses it: a plain "-" in bartlctl backups hid that.
        return policy.trusted.empty() ? "" : "UNSIGNED";
    }
    SshPublicKey signer;
    try {
        signer = sshsig_verify(*signature, sidecar, kSignatureNamespace);
    } catch (const std::invalid_argument& e) {
        if (policy.enforce)
            throw IntegrityError(fmt::format("backup {}: its sidecar's signature is not valid: {}: not accepted", id,
                                             e.what()));
        return fmt::format("INVALID: {}", e.what());
    }
    if (const auto k = find_key(policy.trusted, signer))
        return k->comment.empty() ? signer.fingerprint() : fmt::format("{} {}", k->comment, signer.fingerprint());
    if (policy.enforce)
        throw IntegrityError(fmt::format("backup {} is signed by {}, which is not a trusted key ([backup] "
                                         "trusted_keys, trusted_keys_file): not accepted",
                                         id, signer.fingerprint()));
    return fmt::format("{} {}", signer.fingerprint(), policy.trusted.empty() ? "unchecked" : "UNTRUSTED");
}

}  // namespace bartl
