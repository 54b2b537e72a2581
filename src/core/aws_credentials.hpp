// AWS credentials for the s3:// store, pure: the environment's AWS_* variables and the
// AWS shared credentials file format (INI sections of aws_access_key_id,
// aws_secret_access_key, aws_session_token), as the AWS CLI and SDKs read them. The secret
// values never appear in a message.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace bartl {

/// A key pair (and the token of temporary credentials).
struct AwsCredentials {
    std::string access_key_id;
    std::string secret_access_key;
    std::string session_token;  ///< "" for long-term keys
};

/// The profile (section of the credentials file) to read, and what chose it.
struct AwsProfile {
    std::string name;
    /// "[store.s3] profile", "AWS_DEFAULT_PROFILE", "AWS_PROFILE" or "the default", for messages.
    std::string source;
};

/// The profile as botocore and the AWS CLI choose it when no --profile is given: `configured`
/// ([store.s3] profile) when not empty, else the environment's AWS_DEFAULT_PROFILE, else
/// AWS_PROFILE (`aws_default_profile`, `aws_profile`: nullptr or "" = unset; botocore reads
/// them in that order), else "default".
AwsProfile choose_aws_profile(const std::string& configured, const char* aws_default_profile, const char* aws_profile);

/// Credentials from environment values (nullptr = unset): std::nullopt when neither key
/// variable is set. Throws ConfigError naming the missing variable when only one is set.
std::optional<AwsCredentials> aws_credentials_from_env(const char* access_key_id, const char* secret_access_key,
                                                       const char* session_token);

/// The section `profile` of an AWS shared credentials file (`text`, read from `file`, which
/// messages name): std::nullopt when there is no such section. Read as botocore's
/// configparser reads it: "[profile NAME]" counts as "[NAME]", a header ends at its last ']'
/// (text after it is ignored), '#' and ';' start comment lines, a key ends at the first '='
/// or ':', keys are case-insensitive, other keys are ignored; CRLF line ends are accepted.
/// Throws ConfigError "FILE:LINE:COLUMN: ..." for a line that is neither a section, a key
/// and value, a comment nor blank, and for a leading UTF-8 byte order mark (which the AWS
/// CLI refuses too), and "FILE: ..." when the section lacks aws_access_key_id or
/// aws_secret_access_key. No message quotes a value.
std::optional<AwsCredentials> parse_aws_credentials(std::string_view text, std::string_view profile,
                                                    const std::string& file);

}  // namespace bartl
