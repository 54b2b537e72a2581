// Whether a file holding a secret (a private key, an age identity, AWS keys, a database
// password) is protected as OpenSSH requires of a private key (ssh(1) refuses a key that
// group or others can read), decided from its mode and owner alone: pure, the caller stats.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace bartl {

/// What is wrong with a secret file's permissions.
struct SecretFileProblem {
    /// True when anyone but the owner can write it (they could have replaced it): a configuration
    /// error (exit 78). False: a warning (others may read it).
    bool error = false;
    /// What is wrong and how to fix it, without the file's name: "mode 0644: group and others
    /// can read it (run chmod 600 FILE)"; "FILE" stands for the path, which the caller puts in.
    std::string message;
};

/// Judges a secret file from stat(2)'s `mode` (st_mode, type bits included) and `owner`
/// (st_uid), read by the process running as `self` (geteuid()). `credential` = the file is a
/// systemd credential ($CREDENTIALS_DIRECTORY/NAME), which systemd makes 0400 or 0440 and
/// owns by root or the service's user: group read is then accepted. Rules, in this order:
/// - not a regular file: std::nullopt (a missing or odd file is reported where it is read);
/// - group or others can write it: error ("chmod g-w,o-w FILE and check its content");
/// - owned by a user other than root and `self`: warning (that user can chmod it back);
/// - others (or, for a non-credential, the group) can read it: warning ("chmod 600 FILE",
///   for a credential "chmod o-r FILE");
/// - else std::nullopt.
std::optional<SecretFileProblem> secret_file_problem(mode_t mode, uid_t owner, uid_t self, bool credential);

}  // namespace bartl
