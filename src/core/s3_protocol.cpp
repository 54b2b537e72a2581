#include "core/s3_protocol.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/time.hpp"

namespace bartl {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool valid_bucket(const std::string& b) {
    if (b.size() < 3 || b.size() > 63) return false;
    for (char c : b)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) return false;
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    return alnum(b.front()) && alnum(b.back()) && b.find("..") == std::string::npos;
}

std::uint64_t parse_size(const std::string& s) {
    if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos)
        throw std::invalid_argument(fmt::format("size \"{}\" is not a number", s));
    return std::stoull(s);
}

bool parse_bool(const std::string& s) { return s == "true"; }

}  // namespace

S3Location parse_s3_url(const std::string& url) {
    constexpr std::string_view scheme = "s3://";
    auto bad = [&](const std::string& why) {
        return ConfigError(fmt::format("store URL \"{}\": {} (expected s3://BUCKET/PREFIX)", url, why));
    };
    if (url.compare(0, scheme.size(), scheme) != 0) throw bad("not an s3:// URL");
    const std::string rest = url.substr(scheme.size());
    if (rest.find('@') != std::string::npos)
        throw bad("a store URL must not hold credentials (they come from the environment or the systemd "
                  "credential aws-credentials)");
    if (rest.find_first_of("?#") != std::string::npos) throw bad("a query or fragment is not supported");
    const auto slash = rest.find('/');
    S3Location loc;
    loc.bucket = rest.substr(0, slash);
    if (loc.bucket.empty()) throw bad("no bucket");
    if (!valid_bucket(loc.bucket))
        throw bad(fmt::format("\"{}\" is not a valid bucket name (3 to 63 of a-z, 0-9, '.' and '-')", loc.bucket));
    std::string raw = slash == std::string::npos ? "" : rest.substr(slash + 1);
    while (!raw.empty() && raw.back() == '/') raw.pop_back();
    std::string prefix;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '%') {
            prefix += raw[i];
            continue;
        }
        if (i + 2 >= raw.size()) throw bad("truncated %-escape");
        int hi = hex_value(raw[i + 1]), lo = hex_value(raw[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) throw bad("invalid %-escape");
        prefix += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    if (!prefix.empty()) {
        std::size_t start = 0;
        for (;;) {
            const auto end = prefix.find('/', start);
            const std::string seg = prefix.substr(start, end == std::string::npos ? std::string::npos : end - start);
            if (seg.empty()) throw bad("empty path segment in the prefix");
            if (seg == "." || seg == "..") throw bad("\".\" and \"..\" are not allowed in the prefix");
            if (end == std::string::npos) break;
            start = end + 1;
        }
        for (unsigned char c : prefix)
            if (c < 0x20 || c == 0x7f) throw bad("control character in the prefix");
    }
    loc.prefix = prefix;
    return loc;
}

std::string s3_key(const S3Location& loc, const std::string& name) {
    return loc.prefix.empty() ? name : loc.prefix + "/" + name;
}

std::string s3_uri_encode(std::string_view s, bool keep_slash) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
            c == '.' || c == '~' || (keep_slash && c == '/')) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::string s3_canonical_query(std::vector<std::pair<std::string, std::string>> params) {
    for (auto& [k, v] : params) {
        k = s3_uri_encode(k, false);
        v = s3_uri_encode(v, false);
    }
    std::sort(params.begin(), params.end());
    std::string out;
    for (const auto& [k, v] : params) {
        if (!out.empty()) out += '&';
        out += k;
        out += '=';
        out += v;
    }
    return out;
}

std::vector<std::string_view> xml_raw_elements(std::string_view xml, std::string_view tag) {
    std::vector<std::string_view> out;
    const std::string open = "<" + std::string(tag);
    const std::string close = "</" + std::string(tag) + ">";
    std::size_t pos = 0;
    while ((pos = xml.find(open, pos)) != std::string_view::npos) {
        const std::size_t after = pos + open.size();
        if (after >= xml.size()) break;
        const char c = xml[after];
        if (c != '>' && c != ' ' && c != '/' && c != '\t' && c != '\n' && c != '\r') {
            pos = after;  // <tagX>, another element
            continue;
        }
        const auto gt = xml.find('>', after);
        if (gt == std::string_view::npos) break;
        if (xml[gt - 1] == '/') {  // <tag/>
            out.emplace_back();
            pos = gt + 1;
            continue;
        }
        const auto end = xml.find(close, gt + 1);
        if (end == std::string_view::npos) break;
        out.push_back(xml.substr(gt + 1, end - gt - 1));
        pos = end + close.size();
    }
    return out;
}

std::vector<std::string> xml_elements(std::string_view xml, std::string_view tag) {
    std::vector<std::string> out;
    for (auto raw : xml_raw_elements(xml, tag)) out.push_back(xml_unescape(raw));
    return out;
}

std::string xml_first(std::string_view xml, std::string_view tag) {
    auto all = xml_raw_elements(xml, tag);
    return all.empty() ? std::string() : xml_unescape(all.front());
}

std::string xml_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            default: out += c;
        }
    }
    return out;
}

std::string xml_unescape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '&') {
            out += s[i];
            continue;
        }
        const auto semi = s.find(';', i);
        if (semi == std::string_view::npos || semi - i > 10)
            throw std::invalid_argument("unterminated XML entity");
        const std::string_view ent = s.substr(i + 1, semi - i - 1);
        if (ent == "amp") out += '&';
        else if (ent == "lt") out += '<';
        else if (ent == "gt") out += '>';
        else if (ent == "quot") out += '"';
        else if (ent == "apos") out += '\'';
        else if (ent.size() >= 2 && ent[0] == '#') {
            unsigned long cp = 0;
            const bool hexa = ent[1] == 'x' || ent[1] == 'X';
            const std::string_view digits = ent.substr(hexa ? 2 : 1);
            if (digits.empty()) throw std::invalid_argument("empty XML character reference");
            for (char d : digits) {
                const int v = hexa ? hex_value(d) : (d >= '0' && d <= '9' ? d - '0' : -1);
                if (v < 0) throw std::invalid_argument("bad XML character reference &" + std::string(ent) + ";");
                cp = cp * (hexa ? 16 : 10) + static_cast<unsigned long>(v);
                if (cp > 0x10FFFF) throw std::invalid_argument("XML character reference out of range");
            }
            // UTF-8
            if (cp < 0x80) {
                out += static_cast<char>(cp);
            } else if (cp < 0x800) {
                out += static_cast<char>(0xC0 | (cp >> 6));
                out += static_cast<char>(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                out += static_cast<char>(0xE0 | (cp >> 12));
                out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                out += static_cast<char>(0x80 | (cp & 0x3F));
            } else {
                out += static_cast<char>(0xF0 | (cp >> 18));
                out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
                out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                out += static_cast<char>(0x80 | (cp & 0x3F));
            }
        } else {
            throw std::invalid_argument("unknown XML entity &" + std::string(ent) + ";");
        }
        i = semi;
    }
    return out;
}

S3ListPage parse_list_objects_v2(std::string_view xml) {
    if (xml.find("<ListBucketResult") == std::string_view::npos)
        throw std::invalid_argument("not a ListBucketResult");
    S3ListPage page;
    for (auto contents : xml_raw_elements(xml, "Contents")) {
        S3ListedObject o;
        o.key = xml_first(contents, "Key");
        if (o.key.empty()) throw std::invalid_argument("a Contents element without Key");
        o.size = parse_size(xml_first(contents, "Size"));
        o.last_modified = parse_rfc3339_ms(xml_first(contents, "LastModified"));
        o.etag = xml_first(contents, "ETag");
        page.objects.push_back(std::move(o));
    }
    page.truncated = parse_bool(xml_first(xml, "IsTruncated"));
    page.next_token = xml_first(xml, "NextContinuationToken");
    if (page.truncated && page.next_token.empty())
        throw std::invalid_argument("a truncated listing without NextContinuationToken");
    return page;
}

S3UploadPage parse_list_multipart_uploads(std::string_view xml) {
    if (xml.find("<ListMultipartUploadsResult") == std::string_view::npos)
        throw std::invalid_argument("not a ListMultipartUploadsResult");
    S3UploadPage page;
    for (auto u : xml_raw_elements(xml, "Upload")) {
        S3Upload up;
        up.key = xml_first(u, "Key");
        up.upload_id = xml_first(u, "UploadId");
        if (up.key.empty() || up.upload_id.empty()) throw std::invalid_argument("an Upload without Key or UploadId");
        up.initiated = parse_rfc3339_ms(xml_first(u, "Initiated"));
        page.uploads.push_back(std::move(up));
    }
    page.truncated = parse_bool(xml_first(xml, "IsTruncated"));
    page.next_key_marker = xml_first(xml, "NextKeyMarker");
    page.next_upload_id_marker = xml_first(xml, "NextUploadIdMarker");
    if (page.truncated && page.next_key_marker.empty())
        throw std::invalid_argument("a truncated upload listing without NextKeyMarker");
    return page;
}

std::string parse_upload_id(std::string_view xml) {
    auto id = xml_first(xml, "UploadId");
    if (id.empty()) throw std::invalid_argument("no UploadId in the answer");
    return id;
}

S3ErrorInfo parse_s3_error(std::string_view xml) {
    S3ErrorInfo e;
    auto err = xml_raw_elements(xml, "Error");
    if (err.empty()) return e;
    try {
        e.code = xml_first(err.front(), "Code");
        e.message = xml_first(err.front(), "Message");
    } catch (const std::invalid_argument&) {
        e.message = "(undecodable error message)";
    }
    return e;
}

std::string complete_multipart_xml(const std::vector<std::string>& etags) {
    std::string out = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
    for (std::size_t i = 0; i < etags.size(); ++i)
        out += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", i + 1, xml_escape(etags[i]));
    out += "</CompleteMultipartUpload>";
    return out;
}

std::string delete_objects_xml(const std::vector<std::string>& keys) {
    if (keys.empty() || keys.size() > kS3DeleteObjectsMax)
        throw std::invalid_argument(fmt::format("DeleteObjects takes 1 to {} keys, not {}", kS3DeleteObjectsMax,
                                                keys.size()));
    std::string out = "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>";
    for (const auto& k : keys) out += fmt::format("<Object><Key>{}</Key></Object>", xml_escape(k));
    out += "</Delete>";
    return out;
}

std::vector<S3DeleteError> parse_delete_result(std::string_view xml) {
    if (xml.find("<DeleteResult") == std::string_view::npos) throw std::invalid_argument("not a DeleteResult");
    std::vector<S3DeleteError> out;
    for (auto e : xml_raw_elements(xml, "Error")) {
        S3DeleteError d{xml_first(e, "Key"), xml_first(e, "Code"), xml_first(e, "Message")};
        if (d.key.empty()) throw std::invalid_argument("an Error without Key in the DeleteResult");
        out.push_back(std::move(d));
    }
    return out;
}

bool s3_status_transient(long status) {
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

}  // namespace bartl
