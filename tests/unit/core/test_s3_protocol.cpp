// The S3 wire format (core/s3_protocol.hpp) and AWS credentials (core/aws_credentials.hpp):
// pure functions over hand-made inputs, including S3's documented example answers.
#include <catch2/catch.hpp>

#include "core/aws_credentials.hpp"
#include "core/error.hpp"
#include "core/s3_protocol.hpp"
#include "core/time.hpp"

using namespace bartl;

TEST_CASE("s3 URLs name a bucket and a prefix", "[s3]") {
    auto l = parse_s3_url("s3://my-bucket/backups/notes");
    CHECK(l.bucket == "my-bucket");
    CHECK(l.prefix == "backups/notes");
    CHECK(parse_s3_url("s3://my-bucket").prefix.empty());
    CHECK(parse_s3_url("s3://my-bucket/").prefix.empty());
    CHECK(parse_s3_url("s3://my-bucket/notes/").prefix == "notes");
    CHECK(parse_s3_url("s3://b.example.com/my%20notes").prefix == "my notes");
    CHECK(s3_key(l, "bartl-store.json") == "backups/notes/bartl-store.json");
    CHECK(s3_key(parse_s3_url("s3://my-bucket"), "x") == "x");

    CHECK_THROWS_AS(parse_s3_url("file:///x"), ConfigError);
    CHECK_THROWS_WITH(parse_s3_url("s3://"), Catch::Contains("no bucket"));
    CHECK_THROWS_WITH(parse_s3_url("s3://My_Bucket/x"), Catch::Contains("not a valid bucket name"));
    CHECK_THROWS_AS(parse_s3_url("s3://ab/x"), ConfigError);
    CHECK_THROWS_AS(parse_s3_url("s3://-bucket/x"), ConfigError);
    CHECK_THROWS_AS(parse_s3_url("s3://a..b/x"), ConfigError);
    CHECK_THROWS_WITH(parse_s3_url("s3://AKIA:secret@bucket/x"), Catch::Contains("must not hold credentials"));
    CHECK_THROWS_WITH(parse_s3_url("s3://bucket/a//b"), Catch::Contains("empty path segment"));
    CHECK_THROWS_AS(parse_s3_url("s3://bucket/a/../b"), ConfigError);
    CHECK_THROWS_AS(parse_s3_url("s3://bucket/a?x=1"), ConfigError);
    CHECK_THROWS_AS(parse_s3_url("s3://bucket/a%zz"), ConfigError);
    CHECK_THROWS_AS(parse_s3_url("s3://bucket/a%0a"), ConfigError);
}

TEST_CASE("s3 URI encoding and canonical queries follow SigV4", "[s3]") {
    CHECK(s3_uri_encode("notes-20261130T030904Z-2.1.0+b1-3f9a.tar.zst", true) ==
          "notes-20261130T030904Z-2.1.0%2Bb1-3f9a.tar.zst");
    CHECK(s3_uri_encode("a b/c~d_e", true) == "a%20b/c~d_e");
    CHECK(s3_uri_encode("a/b", false) == "a%2Fb");
    CHECK(s3_uri_encode("\xc3\xa9", false) == "%C3%A9");
    CHECK(s3_canonical_query({}) == "");
    CHECK(s3_canonical_query({{"uploads", ""}}) == "uploads=");
    // Sorted by encoded name; every value encoded, '/' and '=' too.
    CHECK(s3_canonical_query({{"prefix", "p/notes-"}, {"list-type", "2"}, {"continuation-token", "a+b=="}}) ==
          "continuation-token=a%2Bb%3D%3D&list-type=2&prefix=p%2Fnotes-");
    CHECK(s3_canonical_query({{"uploadId", "X"}, {"partNumber", "10"}}) == "partNumber=10&uploadId=X");
}

TEST_CASE("xml elements are found at any depth and decoded", "[s3]") {
    const std::string xml = R"(<a><Key>x &amp; y</Key><b><Key>&lt;z&gt; &#65;&#x42;&#xe9;</Key></b><KeyCount>2</KeyCount>
        <Key attr="1">q</Key><Key/></a>)";
    CHECK(xml_elements(xml, "Key") == std::vector<std::string>{"x & y", "<z> AB\xc3\xa9", "q", ""});
    CHECK(xml_first(xml, "KeyCount") == "2");
    CHECK(xml_first(xml, "Missing").empty());
    CHECK(xml_escape("a<b>&\"'") == "a&lt;b&gt;&amp;&quot;&apos;");
    CHECK(xml_unescape(xml_escape("<Key>&amp;</Key>")) == "<Key>&amp;</Key>");
    CHECK_THROWS_AS(xml_unescape("a &bogus; b"), std::invalid_argument);
    CHECK_THROWS_AS(xml_unescape("a & b"), std::invalid_argument);
    CHECK_THROWS_AS(xml_unescape("&#x110000;"), std::invalid_argument);
}

TEST_CASE("ListObjectsV2 pages parse with sizes, times and continuation", "[s3]") {
    // The shape of the S3 API Reference's ListObjectsV2 example.
    const std::string page1 = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>notes/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>notes/a.tar.zst</Key><LastModified>2026-11-30T03:09:04.123Z</LastModified>
    <ETag>&quot;599bab3ed2c697f1d26842727561fd94&quot;</ETag><Size>1048576</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>notes/a.tar.zst.json</Key><LastModified>2026-11-30T03:09:05.000Z</LastModified>
    <ETag>"e"</ETag><Size>812</Size></Contents>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
</ListBucketResult>)";
    auto p = parse_list_objects_v2(page1);
    REQUIRE(p.objects.size() == 2);
    CHECK(p.objects[0].key == "notes/a.tar.zst");
    CHECK(p.objects[0].size == 1048576);
    CHECK(p.objects[0].etag == "\"599bab3ed2c697f1d26842727561fd94\"");
    CHECK(p.objects[0].last_modified == parse_rfc3339_ms("2026-11-30T03:09:04.123Z"));
    CHECK(p.truncated);
    CHECK(p.next_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");

    auto empty = parse_list_objects_v2(
        "<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>");
    CHECK(empty.objects.empty());
    CHECK_FALSE(empty.truncated);

    CHECK_THROWS_AS(parse_list_objects_v2("<Error><Code>NoSuchBucket</Code></Error>"), std::invalid_argument);
    CHECK_THROWS_AS(parse_list_objects_v2("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"),
                    std::invalid_argument);
    CHECK_THROWS_AS(parse_list_objects_v2("<ListBucketResult><Contents><Key>k</Key><Size>-1</Size>"
                                          "<LastModified>2026-11-30T03:09:04.000Z</LastModified></Contents>"
                                          "</ListBucketResult>"),
                    std::invalid_argument);
    CHECK_THROWS_AS(parse_list_objects_v2("<ListBucketResult><Contents><Key>k</Key><Size>1</Size>"
                                          "<LastModified>yesterday</LastModified></Contents></ListBucketResult>"),
                    std::invalid_argument);
}

TEST_CASE("ListMultipartUploads, CreateMultipartUpload and errors parse", "[s3]") {
    const std::string xml = R"(<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>notes/b</NextKeyMarker><NextUploadIdMarker>id2</NextUploadIdMarker>
  <IsTruncated>true</IsTruncated>
  <Upload><Key>notes/a</Key><UploadId>id1</UploadId><Initiated>2026-11-29T01:00:00.000Z</Initiated></Upload>
  <Upload><Key>notes/b</Key><UploadId>id2</UploadId><Initiated>2026-11-30T01:00:00.000Z</Initiated></Upload>
</ListMultipartUploadsResult>)";
    auto p = parse_list_multipart_uploads(xml);
    REQUIRE(p.uploads.size() == 2);
    CHECK(p.uploads[1].key == "notes/b");
    CHECK(p.uploads[1].upload_id == "id2");
    CHECK(p.uploads[0].initiated == parse_rfc3339_ms("2026-11-29T01:00:00.000Z"));
    CHECK(p.truncated);
    CHECK(p.next_key_marker == "notes/b");
    CHECK(p.next_upload_id_marker == "id2");
    CHECK_THROWS_AS(parse_list_multipart_uploads("<ListBucketResult/>"), std::invalid_argument);

    CHECK(parse_upload_id("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2Fk"
                          "</UploadId></InitiateMultipartUploadResult>") == "VXBsb2Fk");
    CHECK_THROWS_AS(parse_upload_id("<InitiateMultipartUploadResult/>"), std::invalid_argument);

    auto e = parse_s3_error("<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket "
                            "does not exist</Message><BucketName>x</BucketName></Error>");
    CHECK(e.code == "NoSuchBucket");
    CHECK(e.message == "The specified bucket does not exist");
    CHECK(parse_s3_error("").code.empty());
    CHECK(parse_s3_error("<html>proxy error</html>").code.empty());

    CHECK(complete_multipart_xml({"\"a\"", "\"b\""}) ==
          "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part><PartNumber>1</PartNumber>"
          "<ETag>&quot;a&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag></Part>"
          "</CompleteMultipartUpload>");
    for (long s : {429L, 500L, 502L, 503L, 504L}) CHECK(s3_status_transient(s));
    for (long s : {200L, 301L, 400L, 403L, 404L, 412L, 501L}) CHECK_FALSE(s3_status_transient(s));
}

TEST_CASE("DeleteObjects bodies and answers", "[s3]") {
    CHECK(delete_objects_xml({"p/a&b", "p/c"}) ==
          "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet><Object><Key>p/a&amp;b</Key>"
          "</Object><Object><Key>p/c</Key></Object></Delete>");
    CHECK_THROWS_AS(delete_objects_xml({}), std::invalid_argument);
    CHECK_THROWS_AS(delete_objects_xml(std::vector<std::string>(kS3DeleteObjectsMax + 1, "k")), std::invalid_argument);
    CHECK_NOTHROW(delete_objects_xml(std::vector<std::string>(kS3DeleteObjectsMax, "k")));

    CHECK(parse_delete_result("<DeleteResult xmlns=\"x\"/>").empty());
    CHECK(parse_delete_result("<DeleteResult><Deleted><Key>a</Key></Deleted></DeleteResult>").empty());
    auto errs = parse_delete_result(
        "<?xml version=\"1.0\"?><DeleteResult><Deleted><Key>a</Key></Deleted><Error><Key>b&amp;c</Key>"
        "<Code>AccessDenied</Code><Message>Access Denied</Message></Error><Error><Key>d</Key><Code>InternalError"
        "</Code><Message>x</Message></Error></DeleteResult>");
    REQUIRE(errs.size() == 2);
    CHECK(errs[0].key == "b&c");
    CHECK(errs[0].code == "AccessDenied");
    CHECK(errs[0].message == "Access Denied");
    CHECK(errs[1].key == "d");
    CHECK_THROWS_AS(parse_delete_result("<Error><Code>AccessDenied</Code></Error>"), std::invalid_argument);
    CHECK_THROWS_AS(parse_delete_result("<DeleteResult><Error><Code>X</Code></Error></DeleteResult>"),
                    std::invalid_argument);
}

TEST_CASE("AWS credentials come from the environment or a credentials file", "[s3]") {
    CHECK_FALSE(aws_credentials_from_env(nullptr, nullptr, nullptr));
    CHECK_FALSE(aws_credentials_from_env("", "", nullptr));
    auto c = aws_credentials_from_env("AKIA", "s3cr3t", "tok");
    REQUIRE(c);
    CHECK(c->access_key_id == "AKIA");
    CHECK(c->secret_access_key == "s3cr3t");
    CHECK(c->session_token == "tok");
    CHECK_THROWS_WITH(aws_credentials_from_env("AKIA", nullptr, nullptr),
                      Catch::Contains("AWS_SECRET_ACCESS_KEY is not"));
    CHECK_THROWS_WITH(aws_credentials_from_env(nullptr, "s3cr3t", nullptr),
                      Catch::Contains("AWS_ACCESS_KEY_ID is not") && !Catch::Contains("s3cr3t"));

    const std::string file = R"(# written by aws configure
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = defaultsecret

[profile backups]
AWS_ACCESS_KEY_ID=AKIABACKUPS
aws_secret_access_key =  with spaces=and=equals
aws_session_token = FwoGZXIvYXdzE
region = eu-central-1
; another comment
)";
    auto d = parse_aws_credentials(file, "default", "/run/credentials/x/aws-credentials");
    REQUIRE(d);
    CHECK(d->access_key_id == "AKIADEFAULT");
    CHECK(d->secret_access_key == "defaultsecret");
    CHECK(d->session_token.empty());
    auto b = parse_aws_credentials(file, "backups", "F");
    REQUIRE(b);
    CHECK(b->access_key_id == "AKIABACKUPS");
    CHECK(b->secret_access_key == "with spaces=and=equals");
    CHECK(b->session_token == "FwoGZXIvYXdzE");
    CHECK_FALSE(parse_aws_credentials(file, "other", "F"));
    CHECK_FALSE(parse_aws_credentials("", "default", "F"));
    CHECK_THROWS_WITH(parse_aws_credentials("[default]\naws_access_key_id = A\n", "default", "F"),
                      "F: profile [default] has no aws_secret_access_key");
    CHECK_THROWS_WITH(parse_aws_credentials("[default]\naws_secret_access_key = hidden\n", "default", "F"),
                      "F: profile [default] has no aws_access_key_id");
    // A malformed line is named by its number, never quoted: it may hold the secret.
    CHECK_THROWS_WITH(parse_aws_credentials("[default]\naws_access_key_id = A\nhiddensecret\n", "default", "F"),
                      "F:3:1: expected \"key = value\" or \"[profile]\"");
    CHECK_THROWS_WITH(parse_aws_credentials("[default\n", "default", "F"), "F:1:1: a section header must end with ']'");
}

TEST_CASE("The credentials profile: [store.s3] profile, else AWS_DEFAULT_PROFILE, else AWS_PROFILE", "[s3]") {
    auto check = [](const std::string& configured, const char* def, const char* env, const std::string& name,
                    const std::string& source) {
        const auto p = choose_aws_profile(configured, def, env);
        CHECK(p.name == name);
        CHECK(p.source == source);
    };
    check("", nullptr, nullptr, "default", "the default");
    check("", "", "", "default", "the default");
    check("", nullptr, "backups", "backups", "AWS_PROFILE");
    check("", "", "backups", "backups", "AWS_PROFILE");
    check("", "legacy", "backups", "legacy", "AWS_DEFAULT_PROFILE");  // botocore reads it first
    check("", "legacy", nullptr, "legacy", "AWS_DEFAULT_PROFILE");
    check("nightly", "legacy", "backups", "nightly", "[store.s3] profile");
    check("nightly", nullptr, nullptr, "nightly", "[store.s3] profile");
    check("default", nullptr, "backups", "default", "[store.s3] profile");  // named, even as "default"
}

TEST_CASE("An AWS credentials file botocore reads is read alike, and errors name line and column", "[s3]") {
    // Python's configparser (botocore) splits a key at ':' as at '=' and ends a header at its
    // last ']'; the files below are what `aws` accepts.
    const auto colon = parse_aws_credentials("[default]\naws_access_key_id: AKIA\naws_secret_access_key:s3cr3t\n",
                                             "default", "F");
    REQUIRE(colon);
    CHECK(colon->access_key_id == "AKIA");
    CHECK(colon->secret_access_key == "s3cr3t");
    const auto mixed = parse_aws_credentials("[default]\naws_secret_access_key = a:b=c\naws_access_key_id=AKIA\n",
                                             "default", "F");
    REQUIRE(mixed);
    CHECK(mixed->secret_access_key == "a:b=c");
    const auto trailing = parse_aws_credentials(
        "[other]\naws_access_key_id = X\naws_secret_access_key = Y\n[backups] # nightly\r\n"
        "aws_access_key_id = AKIAB\r\naws_secret_access_key = sb\r\n",
        "backups", "F");
    REQUIRE(trailing);
    CHECK(trailing->access_key_id == "AKIAB");
    CHECK(trailing->secret_access_key == "sb");
    CHECK_FALSE(parse_aws_credentials("[backups] # nightly\naws_access_key_id = A\n", "default", "F"));

    CHECK_THROWS_WITH(parse_aws_credentials("[default]\naws_access_key_id = A\n   hiddensecret\n", "default", "F"),
                      "F:3:4: expected \"key = value\" or \"[profile]\"");
    CHECK_THROWS_WITH(parse_aws_credentials("\t[default\n", "default", "F"), "F:1:2: a section header must end with ']'");
    CHECK_THROWS_WITH(parse_aws_credentials("\xEF\xBB\xBF[default]\naws_access_key_id = A\naws_secret_access_key = s\n",
                                            "default", "F"),
                      Catch::StartsWith("F:1:1: the file starts with a UTF-8 byte order mark"));
}
