// The S3 REST API's wire format as the s3:// store speaks it, pure: no I/O. URLs and keys
// (s3://BUCKET/PREFIX, object keys PREFIX/NAME), SigV4's URI encoding and canonical query
// strings (libcurl's CURLOPT_AWS_SIGV4 signs the URL as given, so the URL must already be in
// canonical form), and the few XML documents of ListObjectsV2, ListMultipartUploads,
// CreateMultipartUpload, CompleteMultipartUpload and error answers (Amazon S3 API Reference).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bartl {

/// Where an s3:// store keeps its objects.
struct S3Location {
    std::string bucket;
    std::string prefix;  ///< without leading or trailing '/'; "" = the bucket's top level
};

/// Parses "s3://BUCKET[/PREFIX]" (percent-escapes in PREFIX decoded). BUCKET follows S3's
/// bucket naming rules (3-63 of [a-z0-9.-], starting and ending with a letter or digit).
/// Throws ConfigError for another scheme, a bad bucket name, user info ("@": a URL never holds
/// credentials), a query or fragment, an empty path segment ("a//b") or "." / "..".
S3Location parse_s3_url(const std::string& url);

/// The object key of `name` in `loc`: PREFIX/NAME, or NAME when the prefix is empty.
std::string s3_key(const S3Location& loc, const std::string& name);

/// SigV4 URI encoding: every byte but A-Z a-z 0-9 - _ . ~ as %XX (upper-case hex); '/' kept
/// when `keep_slash` (object key paths), encoded otherwise (query values).
std::string s3_uri_encode(std::string_view s, bool keep_slash);

/// A query string in SigV4 canonical form: names and values encoded, sorted by name then value,
/// every parameter with "=" ("uploads" becomes "uploads="). "" for none.
std::string s3_canonical_query(std::vector<std::pair<std::string, std::string>> params);

/// Text of every <tag>...</tag> element in `xml` (any depth, document order), entities
/// decoded. Elements with attributes (<tag a="b">) match too; <tag/> gives "".
std::vector<std::string> xml_elements(std::string_view xml, std::string_view tag);
/// Raw (undecoded) content of every <tag>...</tag>, for documents nested in others.
std::vector<std::string_view> xml_raw_elements(std::string_view xml, std::string_view tag);
/// The text of the first <tag> element, "" when there is none.
std::string xml_first(std::string_view xml, std::string_view tag);
/// Escapes & < > " ' for XML text and attribute values.
std::string xml_escape(std::string_view s);
/// Decodes the five predefined entities and numeric references (&#N; &#xH;). Throws
/// std::invalid_argument for an unknown or unterminated entity.
std::string xml_unescape(std::string_view s);

/// One object of a ListObjectsV2 page.
struct S3ListedObject {
    std::string key;
    std::uint64_t size = 0;  ///< bytes
    std::chrono::system_clock::time_point last_modified;
    std::string etag;
};

/// One page of ListObjectsV2.
struct S3ListPage {
    std::vector<S3ListedObject> objects;
    bool truncated = false;
    std::string next_token;  ///< NextContinuationToken when truncated
};

/// Parses a ListBucketResult (ListObjectsV2). Throws std::invalid_argument when it is not one,
/// or a Size / LastModified does not parse, or a truncated page has no continuation token.
S3ListPage parse_list_objects_v2(std::string_view xml);

/// One multipart upload in progress (ListMultipartUploads).
struct S3Upload {
    std::string key;
    std::string upload_id;
    std::chrono::system_clock::time_point initiated;
};

/// One page of ListMultipartUploads.
struct S3UploadPage {
    std::vector<S3Upload> uploads;
    bool truncated = false;
    std::string next_key_marker;
    std::string next_upload_id_marker;
};

/// Parses a ListMultipartUploadsResult. Throws std::invalid_argument when it is not one.
S3UploadPage parse_list_multipart_uploads(std::string_view xml);

/// The UploadId of an InitiateMultipartUploadResult. Throws std::invalid_argument without one.
std::string parse_upload_id(std::string_view xml);

/// An S3 error answer: <Error><Code>..</Code><Message>..</Message></Error>.
struct S3ErrorInfo {
    std::string code;     ///< "NoSuchBucket", "SlowDown", ...; "" when the body is no S3 error
    std::string message;
};

/// The error in an S3 error body; empty fields when `xml` holds none (a HEAD, a proxy's page).
S3ErrorInfo parse_s3_error(std::string_view xml);

/// The CompleteMultipartUpload request body for parts 1..N with these ETags (in order).
std::string complete_multipart_xml(const std::vector<std::string>& etags);

/// Most keys one DeleteObjects request may name (Amazon S3 API Reference, DeleteObjects).
inline constexpr std::size_t kS3DeleteObjectsMax = 1000;

/// The DeleteObjects request body for `keys` (at most kS3DeleteObjectsMax), in quiet mode:
/// the answer names only the keys that could not be deleted. Throws std::invalid_argument
/// for no keys or too many.
std::string delete_objects_xml(const std::vector<std::string>& keys);

/// One key a DeleteObjects request could not delete.
struct S3DeleteError {
    std::string key;
    std::string code;  ///< "AccessDenied", "InternalError", ...
    std::string message;
};

/// The <Error> entries of a DeleteResult (keys not deleted); a key that did not exist counts
/// as deleted in S3. Throws std::invalid_argument when `xml` is not a DeleteResult.
std::vector<S3DeleteError> parse_delete_result(std::string_view xml);

/// True for an HTTP status an S3 client retries: 429, 500, 502, 503, 504 (and S3's 503 SlowDown).
bool s3_status_transient(long status);

}  // namespace bartl
