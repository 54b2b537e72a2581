// The encryption stage of the blob pipeline: Debian's `age` (the reference implementation of
// the age v1 format) as a child process, so the format's edge cases (stanzas, header MAC,
// STREAM chunks, X25519 and SSH recipients, plugins) are the reference's and bartl holds no
// cryptographic code. `age -d -i KEY B.tar.zst.age | zstd -dc | tar -x` opens a blob by hand.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "util/byte_stream.hpp"
#include "util/cancel.hpp"
#include "util/child_stream.hpp"

namespace bartl {

/// Who can decrypt a backup: age recipients ("age1...", "ssh-ed25519 AAAA...", "ssh-rsa
/// AAAA..."; `age -r`) and recipient files (one recipient a line, `age -R`). At least one.
struct AgeRecipients {
    std::vector<std::string> recipients;
    std::vector<std::filesystem::path> files;
    bool empty() const noexcept { return recipients.empty() && files.empty(); }
};

/// The program run for age, "age" (looked up in PATH: /usr/bin/age on Debian).
inline constexpr const char* kAgeProgram = "age";

/// Backup side: `age -r R... -R F...` between the compressor and the hashing stage. What is
/// written comes out encrypted into `next`.
class AgeEncryptor : public ByteSink {
public:
    /// Starts age. Throws std::invalid_argument without recipients, RuntimeError when age
    /// cannot be started ("cannot start age -r: age: No such file or directory").
    AgeEncryptor(ByteSink& next, const AgeRecipients& to, CancelToken cancel);
    /// Encrypts `n` bytes. Throws RuntimeError "age -r exited with status 1: <its stderr>"
    /// (a recipient age refuses, a missing recipients file), what `next` throws,
    /// StopRequested.
    void write(const void* data, std::size_t n) override;
    /// Ends the stream (age writes its last chunk) and checks age's exit status. Call once.
    void finish();

private:
    ByteSink& next_;
    ChildStream child_;
};

/// Restore side: `age -d -i IDENTITY...` between the hashing stage and the decompressor.
class AgeDecryptor : public ByteSource {
public:
    /// Starts age with the identity files (age's identity file format: AGE-SECRET-KEY-1...
    /// lines, or an OpenSSH private key). `label` names the blob in messages. Throws
    /// std::invalid_argument without identities, RuntimeError when age cannot be started.
    AgeDecryptor(ByteSource& from, const std::vector<std::filesystem::path>& identities, std::string label,
                 CancelToken cancel);
    /// Up to `n` decrypted bytes; 0 at the end, once age exited with status 0. Throws
    /// IntegrityError "LABEL: cannot decrypt with the identities FILE[, FILE...]: age -d
    /// exited with status 1: age: error: ..." (wrong identity, a damaged or truncated
    /// ciphertext, not an age file; without age's "report" line), what `from` throws,
    /// StopRequested.
    std::size_t read(void* data, std::size_t n) override;

private:
    ByteSource& from_;
    std::string label_;
    std::string tried_;  ///< the identity files, for messages
    ChildStream child_;
};

}  // namespace bartl
