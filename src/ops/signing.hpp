// Signed sidecars (bartl(7) "KEY MANAGEMENT"): the signing key bartld signs with, the keys a
// restore trusts, and what a sidecar's signature NAME.json.sig says.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "util/sshsig.hpp"

namespace bartl {

/// The systemd credential holding the signing key: $CREDENTIALS_DIRECTORY/signing-key.
inline constexpr const char* kSigningKeyCredential = "signing-key";

/// $CREDENTIALS_DIRECTORY/signing-key when it exists, else std::nullopt.
std::optional<std::filesystem::path> signing_key_credential();

/// The signing key: the credential signing-key when $CREDENTIALS_DIRECTORY holds it, else
/// [backup] signing_key_file, else std::nullopt (backups are not signed). Throws RuntimeError
/// naming the file when it cannot be read or is not an unencrypted OpenSSH Ed25519 key.
std::optional<SshSigningKey> load_signing_key(const Config& config);

/// The keys [backup] trusted_keys and trusted_keys_file name (empty when neither is set).
/// Throws ConfigError "FILE:LINE:COLUMN: message" for a key that does not parse, naming the
/// config key's position or the line of trusted_keys_file; a missing file is an error at the
/// config key.
std::vector<SshPublicKey> load_trusted_keys(const Config& config);

/// What a read of sidecars requires of their signatures.
struct TrustPolicy {
    std::vector<SshPublicKey> trusted;  ///< the keys a restore accepts (names the signer)
    /// Reject a backup whose sidecar is unsigned, badly signed or signed by a key not in
    /// `trusted` (restore, retention, verify); false only reports (bartlctl backups).
    bool enforce = false;
    /// Read the signature to name the signer even when not enforcing (bartlctl backups,
    /// verify); without either, no signature is read (a restore that requires none).
    bool report = false;
};

/// The policy of `config`: its trusted keys, enforced when it sets any, reporting the signer
/// when `report`. Throws ConfigError as load_trusted_keys().
TrustPolicy trust_policy(const Config& config, bool report = false);

/// The policy of bartlctl backups: names each backup's signer, rejects none.
TrustPolicy reporting_policy(const Config& config);

/// Checks `signature` (the text of NAME.json.sig, std::nullopt when there is none) of the
/// sidecar bytes `sidecar` of backup `id` against `policy`; `named` is the key the sidecar's
/// `signature` names (a missing signature file is then INVALID, not unsigned). Returns the signer as bartlctl
/// shows it: "" (unsigned, no trusted keys configured), "UNSIGNED" (unsigned while trusted keys
/// are configured: a restore refuses it), "COMMENT SHA256:..." (a trusted key), "SHA256:... unchecked" (no
/// trusted keys configured), "SHA256:... UNTRUSTED", "INVALID: why". Throws IntegrityError
/// naming the backup and what is wrong when `policy.enforce` and the signature is missing,
/// invalid or by an untrusted key. Pure.
std::string check_signature(const std::string& id, const std::string& sidecar,
                            const std::optional<std::string>& signature, const TrustPolicy& policy,
                            const std::optional<std::string>& named = std::nullopt);

}  // namespace bartl
