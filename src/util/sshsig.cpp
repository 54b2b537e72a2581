#include "util/sshsig.hpp"

#include <cstdint>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "core/error.hpp"

namespace bartl {

namespace {

constexpr std::string_view kKeyType = "ssh-ed25519";
constexpr std::string_view kMagic = "SSHSIG";
constexpr std::string_view kBegin = "-----BEGIN SSH SIGNATURE-----";
constexpr std::string_view kEnd = "-----END SSH SIGNATURE-----";
constexpr std::string_view kKeyBegin = "-----BEGIN OPENSSH PRIVATE KEY-----";
constexpr std::string_view kKeyEnd = "-----END OPENSSH PRIVATE KEY-----";
constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kSignatureBytes = 64;

/// Reads the SSH wire encoding (RFC 4251 section 5) from a byte string.
class Reader {
public:
    /// Reads `data`, which must outlive the reader; `what` names it in messages.
    Reader(std::string_view data, std::string what) : data_(data), what_(std::move(what)) {}
    Reader(std::string&&, std::string) = delete;

    std::uint32_t u32() {
        need(4, "a 32-bit number");
        const auto* p = reinterpret_cast<const unsigned char*>(data_.data());
        const std::uint32_t v = (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) |
                                (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
        data_.remove_prefix(4);
        return v;
    }
    std::string string(const char* name) {
        const auto n = u32();
        need(n, name);
        std::string s(data_.substr(0, n));
        data_.remove_prefix(n);
        return s;
    }
    std::string_view raw(std::size_t n, const char* name) {
        need(n, name);
        auto s = data_.substr(0, n);
        data_.remove_prefix(n);
        return s;
    }
    bool empty() const { return data_.empty(); }
    std::size_t left() const { return data_.size(); }
    std::string_view rest() const { return data_; }

private:
    void need(std::size_t n, const char* name) {
        if (data_.size() < n) throw std::invalid_argument(fmt::format("{} is truncated (in {})", what_, name));
    }
    std::string_view data_;
    std::string what_;
};

void put_u32(std::string& out, std::uint32_t v) {
    out.push_back(char(v >> 24));
    out.push_back(char(v >> 16));
    out.push_back(char(v >> 8));
    out.push_back(char(v));
}

void put_string(std::string& out, std::string_view s) {
    put_u32(out, static_cast<std::uint32_t>(s.size()));
    out.append(s);
}

std::string base64(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

/// Decodes padded base64 (whitespace already removed). Throws std::invalid_argument.
std::string unbase64(std::string_view text, const std::string& what) {
    if (text.empty() || text.size() % 4 != 0 ||
        text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") !=
            std::string_view::npos)
        throw std::invalid_argument(fmt::format("{} is not base64", what));
    const auto pad = text.size() - text.find_last_not_of('=') - 1;
    if (pad > 2 || text.substr(0, text.size() - pad).find('=') != std::string_view::npos)
        throw std::invalid_argument(fmt::format("{} is not base64", what));
    std::string out(text.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    if (n < 0) throw std::invalid_argument(fmt::format("{} is not base64", what));
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

/// The text between BEGIN and END lines, whitespace removed.
std::string dearmor(std::string_view text, std::string_view begin, std::string_view end, const char* what) {
    const auto b = text.find(begin);
    if (b == std::string_view::npos)
        throw std::invalid_argument(fmt::format("not {} (no \"{}\" line)", what, begin));
    const auto e = text.find(end, b + begin.size());
    if (e == std::string_view::npos)
        throw std::invalid_argument(fmt::format("{} is truncated (no \"{}\" line)", what, end));
    std::string body;
    for (char c : text.substr(b + begin.size(), e - b - begin.size()))
        if (c != '\n' && c != '\r' && c != ' ' && c != '\t') body.push_back(c);
    return body;
}

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string digest(const EVP_MD* md, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data.data(), data.size(), out, &n, md, nullptr) != 1)
        throw RuntimeError("OpenSSL cannot compute a message digest");
    return std::string(reinterpret_cast<char*>(out), n);
}

/// The bytes an SSHSIG signature covers (PROTOCOL.sshsig "Signed Data").
std::string signed_data(std::string_view ns, std::string_view hash_alg, std::string_view hash) {
    std::string d(kMagic);
    put_string(d, ns);
    put_string(d, "");  // reserved
    put_string(d, hash_alg);
    put_string(d, hash);
    return d;
}

SshPublicKey key_from_blob(std::string_view blob, const std::string& what) {
    Reader r(blob, what);
    const auto type = r.string("the key type");
    if (type != kKeyType)
        throw std::invalid_argument(fmt::format("{} is a {} key; bartl signs with and trusts ssh-ed25519 keys only",
                                                what, type));
    SshPublicKey k;
    k.key = r.string("the key");
    if (k.key.size() != kKeyBytes || !r.empty())
        throw std::invalid_argument(fmt::format("{} is not a well-formed ssh-ed25519 key", what));
    return k;
}

/// Splits an OpenSSH key line into tokens at blanks outside double quotes, each with its
/// 1-based column.
std::vector<std::pair<std::string, std::size_t>> tokens(std::string_view line) {
    std::vector<std::pair<std::string, std::size_t>> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        if (i >= line.size()) break;
        const std::size_t start = i;
        bool quoted = false;
        while (i < line.size() && (quoted || (line[i] != ' ' && line[i] != '\t'))) {
            if (line[i] == '"') quoted = !quoted;
            ++i;
        }
        out.emplace_back(std::string(line.substr(start, i - start)), start + 1);
    }
    return out;
}

bool is_key_type(const std::string& t) {
    return t.rfind("ssh-", 0) == 0 || t.rfind("ecdsa-", 0) == 0 || t.rfind("sk-", 0) == 0 ||
           t.rfind("rsa-sha2-", 0) == 0;
}

/// The comma-separated options of an options token (commas inside quotes kept).
std::vector<std::string> options(const std::string& token) {
    std::vector<std::string> out(1);
    bool quoted = false;
    for (char c : token) {
        if (c == '"') quoted = !quoted;
        if (c == ',' && !quoted)
            out.emplace_back();
        else
            out.back().push_back(c);
    }
    return out;
}

}  // namespace

std::string SshPublicKey::blob() const {
    std::string b;
    put_string(b, kKeyType);
    put_string(b, key);
    return b;
}

std::string SshPublicKey::fingerprint() const {
    auto b64 = base64(digest(EVP_sha256(), blob()));
    while (!b64.empty() && b64.back() == '=') b64.pop_back();
    return "SHA256:" + b64;
}

std::string SshPublicKey::line() const {
    return fmt::format("{} {}{}{}", kKeyType, base64(blob()), comment.empty() ? "" : " ", comment);
}

SshPublicKey parse_ssh_public_key(std::string_view line) {
    const auto t = tokens(line);
    if (t.empty()) throw std::invalid_argument("empty public key");
    if (t[0].first != kKeyType)
        throw std::invalid_argument(fmt::format("\"{}\" is not an ssh-ed25519 public key (bartl signs with and "
                                                "trusts ssh-ed25519 keys only)",
                                                std::string(line.substr(0, 40))));
    if (t.size() < 2) throw std::invalid_argument("ssh-ed25519 public key without its base64 part");
    auto k = key_from_blob(unbase64(t[1].first, "the key's base64 part"), "the key");
    const auto comment_at = t.size() > 2 ? t[2].second - 1 : line.size();
    k.comment = std::string(line.substr(comment_at));
    while (!k.comment.empty() && (k.comment.back() == ' ' || k.comment.back() == '\r' || k.comment.back() == '\n'))
        k.comment.pop_back();
    return k;
}

std::vector<TrustedKeyLine> parse_trusted_keys(std::string_view text) {
    std::vector<TrustedKeyLine> out;
    std::size_t lineno = 0;
    while (!text.empty()) {
        ++lineno;
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        const auto t = tokens(line);
        if (t.empty() || t[0].first[0] == '#') continue;
        std::size_t at = 0;
        while (at < t.size() && !is_key_type(t[at].first)) ++at;
        if (at == t.size())
            throw std::invalid_argument(
                fmt::format("{}:{}: no ssh-ed25519 key on this line (write \"PRINCIPALS ssh-ed25519 AAAA... "
                            "COMMENT\" as in allowed_signers, or \"ssh-ed25519 AAAA... COMMENT\")",
                            lineno, t[0].second));
        bool for_us = true;
        for (std::size_t i = 0; i < at; ++i)
            for (const auto& o : options(t[i].first)) {
                if (o == "cert-authority")
                    throw std::invalid_argument(fmt::format(
                        "{}:{}: cert-authority: bartl trusts plain keys, not certificate authorities", lineno,
                        t[i].second));
                // ssh-keygen -Y verify refuses a key outside its validity period; taking such a
                // line without checking it would trust a key the file says has expired.
                if (o.rfind("valid-after=", 0) == 0 || o.rfind("valid-before=", 0) == 0)
                    throw std::invalid_argument(fmt::format(
                        "{}:{}: {}: bartl does not check a key's validity period, which ssh-keygen -Y verify "
                        "enforces; remove the option, or the whole line to stop trusting the key",
                        lineno, t[i].second, o.substr(0, o.find('='))));
                if (o.rfind("namespaces=", 0) == 0) {
                    std::string list = o.substr(11);
                    if (list.size() >= 2 && list.front() == '"' && list.back() == '"') list = list.substr(1, list.size() - 2);
                    for_us = false;
                    for (const auto& n : options(list))
                        if (n == kSignatureNamespace || n == "*") for_us = true;
                }
            }
        try {
            auto k = parse_ssh_public_key(line.substr(t[at].second - 1));
            if (for_us) out.push_back(TrustedKeyLine{std::move(k), lineno});
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument(fmt::format("{}:{}: {}", lineno, t[at].second, e.what()));
        }
    }
    return out;
}

bool private_key_has_passphrase(std::string_view text) noexcept {
    try {
        if (text.find(kKeyBegin) == std::string_view::npos)
            return text.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") != std::string_view::npos ||
                   text.find("Proc-Type: 4,ENCRYPTED") != std::string_view::npos;
        const auto bytes = unbase64(dearmor(text, kKeyBegin, kKeyEnd, "an OpenSSH private key"), "the key");
        Reader r(bytes, "the key");
        if (r.raw(15, "its magic") != std::string_view("openssh-key-v1\0", 15)) return false;
        return r.string("the cipher name") != "none";
    } catch (...) {
        return false;
    }
}

SshSigningKey parse_openssh_private_key(std::string_view text) {
    const std::string what = "the OpenSSH private key";
    const auto body = dearmor(text, kKeyBegin, kKeyEnd, "an OpenSSH private key (as ssh-keygen -t ed25519 writes it)");
    const auto bytes = unbase64(body, what);
    Reader r(bytes, what);
    if (r.raw(15, "its magic") != std::string_view("openssh-key-v1\0", 15))
        throw std::invalid_argument("not an OpenSSH private key (no openssh-key-v1 magic)");
    const auto cipher = r.string("the cipher name");
    const auto kdf = r.string("the KDF name");
    r.string("the KDF options");
    if (cipher != "none" || kdf != "none")
        throw std::invalid_argument(fmt::format(
            "the OpenSSH private key is protected by a passphrase (cipher {}): a daemon has nobody to type it; "
            "remove the passphrase of a copy with ssh-keygen -p -N '' -f FILE and protect the file instead "
            "(e.g. as an encrypted systemd credential)",
            cipher));
    if (r.u32() != 1) throw std::invalid_argument("the OpenSSH private key file holds more than one key");
    const auto pub = key_from_blob(r.string("the public key"), "the private key file's public key");
    const auto private_part = r.string("the private part");
    Reader p(private_part, what);
    if (!r.empty()) throw std::invalid_argument("the OpenSSH private key has bytes after its private part");
    if (p.u32() != p.u32()) throw std::invalid_argument("the OpenSSH private key's check numbers differ (damaged)");
    const auto type = p.string("the key type");
    if (type != kKeyType)
        throw std::invalid_argument(fmt::format("the private key is a {} key; bartl signs with ssh-ed25519 keys", type));
    const auto pk = p.string("the public key");
    const auto sk = p.string("the private key");
    SshSigningKey k;
    k.pub.comment = p.string("the comment");
    const auto pad = p.rest();
    for (std::size_t i = 0; i < pad.size(); ++i)
        if (static_cast<unsigned char>(pad[i]) != i + 1)
            throw std::invalid_argument("the OpenSSH private key's padding is wrong (damaged)");
    if (pk != pub.key || sk.size() != 2 * kKeyBytes || sk.substr(kKeyBytes) != pub.key)
        throw std::invalid_argument("the OpenSSH private key's parts do not agree (damaged)");
    k.seed = sk.substr(0, kKeyBytes);
    k.pub.key = pub.key;
    Pkey pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                           reinterpret_cast<const unsigned char*>(k.seed.data()), k.seed.size()));
    if (!pkey) throw RuntimeError("OpenSSL does not take the Ed25519 private key");
    std::string derived(kKeyBytes, '\0');
    std::size_t n = derived.size();
    if (EVP_PKEY_get_raw_public_key(pkey.get(), reinterpret_cast<unsigned char*>(derived.data()), &n) != 1 ||
        n != kKeyBytes)
        throw RuntimeError("OpenSSL cannot derive the Ed25519 public key");
    if (derived != k.pub.key)
        throw std::invalid_argument("the OpenSSH private key does not belong to the public key it names (damaged)");
    return k;
}

std::string sshsig_sign(const SshSigningKey& key, std::string_view message, std::string_view ns) {
    const auto data = signed_data(ns, "sha512", digest(EVP_sha512(), message));
    Pkey pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                           reinterpret_cast<const unsigned char*>(key.seed.data()), key.seed.size()));
    MdCtx ctx(EVP_MD_CTX_new());
    if (!pkey || !ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1)
        throw RuntimeError("OpenSSL cannot set up an Ed25519 signature");
    std::string sig(kSignatureBytes, '\0');
    std::size_t n = sig.size();
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &n,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1 ||
        n != kSignatureBytes)
        throw RuntimeError("OpenSSL cannot make the Ed25519 signature");
    std::string sig_blob;
    put_string(sig_blob, kKeyType);
    put_string(sig_blob, sig);
    std::string blob(kMagic);
    put_u32(blob, 1);
    put_string(blob, key.pub.blob());
    put_string(blob, ns);
    put_string(blob, "");
    put_string(blob, "sha512");
    put_string(blob, sig_blob);
    const auto b64 = base64(blob);
    std::string out(kBegin);
    out += '\n';
    for (std::size_t i = 0; i < b64.size(); i += 70) {
        out += b64.substr(i, 70);
        out += '\n';
    }
    out += kEnd;
    out += '\n';
    return out;
}

SshPublicKey sshsig_verify(std::string_view armored, std::string_view message, std::string_view ns) {
    const std::string what = "the SSH signature";
    const auto bytes = unbase64(dearmor(armored, kBegin, kEnd, "an SSH signature"), what);
    Reader r(bytes, what);
    if (r.raw(kMagic.size(), "its magic") != kMagic) throw std::invalid_argument("not an SSH signature (no SSHSIG magic)");
    if (const auto v = r.u32(); v != 1)
        throw std::invalid_argument(fmt::format("SSH signature version {} (this bartl reads version 1)", v));
    auto key = key_from_blob(r.string("the public key"), "the signing key");
    const auto sig_ns = r.string("the namespace");
    r.string("the reserved field");
    const auto hash_alg = r.string("the hash algorithm");
    const auto signature = r.string("the signature");
    Reader s(signature, what);
    if (!r.empty()) throw std::invalid_argument("the SSH signature has bytes after its signature");
    if (sig_ns != ns)
        throw std::invalid_argument(fmt::format("the signature is for namespace \"{}\", not \"{}\"", sig_ns, ns));
    const EVP_MD* md = hash_alg == "sha512" ? EVP_sha512() : hash_alg == "sha256" ? EVP_sha256() : nullptr;
    if (!md) throw std::invalid_argument(fmt::format("the signature's hash algorithm \"{}\" is not sha512 or sha256", hash_alg));
    const auto sig_type = s.string("the signature type");
    const auto sig = s.string("the signature bytes");
    if (sig_type != kKeyType || sig.size() != kSignatureBytes || !s.empty())
        throw std::invalid_argument(fmt::format("the signature is not a well-formed {} signature", kKeyType));
    const auto data = signed_data(sig_ns, hash_alg, digest(md, message));
    Pkey pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                          reinterpret_cast<const unsigned char*>(key.key.data()), key.key.size()));
    MdCtx ctx(EVP_MD_CTX_new());
    if (!pkey || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1)
        throw RuntimeError("OpenSSL cannot set up an Ed25519 verification");
    if (EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                         reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
        throw std::invalid_argument(
            fmt::format("the signature by {} does not match the signed bytes (altered, or signed for other bytes)",
                        key.fingerprint()));
    return key;
}

std::optional<SshPublicKey> find_key(const std::vector<SshPublicKey>& trusted, const SshPublicKey& key) {
    for (const auto& k : trusted)
        if (k.key == key.key) return k;
    return std::nullopt;
}

}  // namespace bartl
