// OpenSSH signatures of backup sidecars: the SSHSIG format of OpenSSH's PROTOCOL.sshsig
// (what `ssh-keygen -Y sign` writes and `ssh-keygen -Y verify` checks), with Ed25519 keys
// only, the keys in OpenSSH's own formats (PROTOCOL.key: "openssh-key-v1" private keys,
// "ssh-ed25519 AAAA..." public key lines). The framing is done here; every cryptographic
// operation (Ed25519, SHA-512, SHA-256) is OpenSSL's EVP interface. No I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bartl {

/// The namespace bartl signs sidecars in (`ssh-keygen -Y verify -n bartl-backup`).
inline constexpr const char* kSignatureNamespace = "bartl-backup";

/// An Ed25519 public key.
struct SshPublicKey {
    std::string key;      ///< the 32 raw key bytes
    std::string comment;  ///< the comment of its line ("" when none)

    /// The SSH wire blob: string "ssh-ed25519", string key (RFC 8709).
    std::string blob() const;
    /// "SHA256:" + unpadded base64 of SHA-256(blob), as `ssh-keygen -l` prints it.
    std::string fingerprint() const;
    /// "ssh-ed25519 BASE64[ COMMENT]", as ssh-keygen writes KEY.pub.
    std::string line() const;
};

/// Parses a public key: "ssh-ed25519 BASE64 [COMMENT]". Throws std::invalid_argument naming
/// what is wrong (another key type, bad base64, a blob that is not an Ed25519 key).
SshPublicKey parse_ssh_public_key(std::string_view line);

/// One key of a trusted keys file, with the line it came from (1-based).
struct TrustedKeyLine {
    SshPublicKey key;
    std::size_t line = 0;
};

/// Parses a trusted keys file: one key a line, in OpenSSH's allowed_signers form
/// ("PRINCIPALS [OPTIONS] ssh-ed25519 BASE64 [COMMENT]") or authorized_keys form
/// ("[OPTIONS] ssh-ed25519 BASE64 [COMMENT]"); '#' comments and blank lines skipped. A line
/// whose namespaces="..." option does not list bartl-backup is skipped (ssh-keygen -Y verify
/// would not accept it either). Throws std::invalid_argument "LINE:COLUMN: message" for a
/// line without an ssh-ed25519 key, a cert-authority line, a valid-after= or valid-before=
/// option (a validity period bartl does not check), or a bad key.
std::vector<TrustedKeyLine> parse_trusted_keys(std::string_view text);

/// An Ed25519 private key from an OpenSSH private key file.
struct SshSigningKey {
    std::string seed;  ///< the 32-byte private key (RFC 8032 secret key)
    SshPublicKey pub;  ///< its public key, with the file's comment
};

/// Parses an unencrypted "-----BEGIN OPENSSH PRIVATE KEY-----" file holding one Ed25519 key
/// (as `ssh-keygen -t ed25519 -N ''` writes it). Checks that the public key derived from the
/// private one is the one the file names. Throws std::invalid_argument naming what is wrong
/// (a passphrase-protected key, another key type, a damaged file).
SshSigningKey parse_openssh_private_key(std::string_view text);

/// Whether a private key file's `text` is protected by a passphrase: an OpenSSH key
/// ("-----BEGIN OPENSSH PRIVATE KEY-----") whose cipher is not "none", or a PEM key marked
/// encrypted (PKCS#8 "ENCRYPTED PRIVATE KEY", or "Proc-Type: 4,ENCRYPTED"). False for anything
/// else, a damaged file included. Never throws.
bool private_key_has_passphrase(std::string_view text) noexcept;

/// Signs `message` in namespace `ns`: an armored SSHSIG ("-----BEGIN SSH SIGNATURE-----",
/// base64 wrapped at 70 columns, hash sha512), byte for byte what `ssh-keygen -Y sign`
/// writes for the same key (Ed25519 signatures are deterministic). Throws RuntimeError when
/// OpenSSL fails.
std::string sshsig_sign(const SshSigningKey& key, std::string_view message, std::string_view ns);

/// Checks an armored SSHSIG of `message` in namespace `ns`: framing, version 1, namespace,
/// hash (sha512 or sha256), Ed25519 signature by the key it names. Returns that key (the
/// caller decides whether it trusts it). Throws std::invalid_argument naming what is wrong
/// ("not an SSH signature", "namespace \"git\", not \"bartl-backup\"", "the signature does
/// not match the message", ...).
SshPublicKey sshsig_verify(std::string_view armored, std::string_view message, std::string_view ns);

/// The key of `trusted` that `key` is, or std::nullopt.
std::optional<SshPublicKey> find_key(const std::vector<SshPublicKey>& trusted, const SshPublicKey& key);

}  // namespace bartl
