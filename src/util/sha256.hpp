// SHA-256 (FIPS 180-4) by OpenSSL's EVP interface.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

struct evp_md_ctx_st;

namespace bartl {

/// An incremental SHA-256. Throws RuntimeError when OpenSSL fails.
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    /// Adds `n` bytes.
    void update(const void* data, std::size_t n);
    /// The lower-case hex digest (64 characters); the context is finished afterwards.
    std::string hex();

private:
    evp_md_ctx_st* ctx_;
};

/// SHA-256 of a whole file, lower-case hex. Throws RuntimeError naming the file on I/O errors.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace bartl
