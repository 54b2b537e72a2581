#include "blob/age_stage.hpp"

#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl {

namespace {

/// The line age 1.x adds below each error (cmd/age: errorf).
constexpr const char* kAgeReportLine = "age: report unexpected or unhelpful errors at https://filippo.io/age/report";

ChildStreamSpec encrypt_spec(const AgeRecipients& to, CancelToken cancel) {
    if (to.empty()) throw std::invalid_argument("age encryption without recipients");
    ChildStreamSpec s;
    s.argv = {kAgeProgram, "--encrypt"};
    for (const auto& r : to.recipients) {
        s.argv.push_back("-r");
        s.argv.push_back(r);
    }
    for (const auto& f : to.files) {
        s.argv.push_back("-R");
        s.argv.push_back(f.string());
    }
    s.what = "age -r";
    s.cancel = std::move(cancel);
    return s;
}

ChildStreamSpec decrypt_spec(const std::vector<std::filesystem::path>& identities, CancelToken cancel) {
    if (identities.empty()) throw std::invalid_argument("age decryption without identities");
    ChildStreamSpec s;
    s.argv = {kAgeProgram, "--decrypt"};
    for (const auto& i : identities) {
        s.argv.push_back("-i");
        s.argv.push_back(i.string());
    }
    s.what = "age -d";
    s.cancel = std::move(cancel);
    // Reading the blob and hashing it on a thread of their own, beside age and zstd -d.
    s.feed_thread = true;
    return s;
}

}  // namespace

AgeEncryptor::AgeEncryptor(ByteSink& next, const AgeRecipients& to, CancelToken cancel)
    : next_(next), child_(encrypt_spec(to, std::move(cancel))) {}

void AgeEncryptor::write(const void* data, std::size_t n) { child_.write(data, n, &next_); }

void AgeEncryptor::finish() { child_.finish(&next_); }

AgeDecryptor::AgeDecryptor(ByteSource& from, const std::vector<std::filesystem::path>& identities, std::string label,
                           CancelToken cancel)
    : from_(from), label_(std::move(label)), child_(decrypt_spec(identities, std::move(cancel))) {
    for (const auto& i : identities) tried_ += (tried_.empty() ? "" : ", ") + i.string();
}

std::size_t AgeDecryptor::read(void* data, std::size_t n) {
    try {
        return child_.read(data, n, &from_);
    } catch (const ChildFailed& e) {
        // Whatever age refuses (no identity matches, a header or payload chunk that does not
        // authenticate, a truncated stream) makes this backup unusable, not the host broken:
        // an IntegrityError, so a restore tries the next older backup.
        // age ends every error with a line asking to report it upstream: noise in a journal
        // entry that should name the backup and the identities instead.
        std::string why = e.what();
        for (std::size_t at; (at = why.find(kAgeReportLine)) != std::string::npos;) {
            std::size_t from = at, to = at + std::strlen(kAgeReportLine);
            if (from > 0 && why[from - 1] == '\n') --from;
            else if (to < why.size() && why[to] == '\n') ++to;
            why.erase(from, to - from);
        }
        throw IntegrityError(fmt::format("{}: cannot decrypt with the identities {}: {}", label_, tried_, why));
    }
}

}  // namespace bartl
