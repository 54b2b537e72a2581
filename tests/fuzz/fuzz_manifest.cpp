// libFuzzer target: bartl::BackupManifest::from_json (src/blob/manifest.hpp), the sidecar
// "<blob>.json" and the in-archive bartl/manifest.json parser.
// Contract checked: throws only std::invalid_argument; a parsed manifest serialises to JSON
// that parses back to the same fields (the sidecar form when it has a blob, the in-archive
// form always); blob.sha256 is 64 lower-case hex digits when present.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "blob/manifest.hpp"
#include "fuzz_common.hpp"

using bartl::BackupManifest;
using bartl_fuzz::fail;

namespace {

bool same_base(const BackupManifest& a, const BackupManifest& b) {
    if (a.format != b.format || a.app != b.app || a.version != b.version || a.created != b.created ||
        a.host != b.host || a.id != b.id || a.compression != b.compression || a.encryption != b.encryption ||
        a.paths != b.paths || a.components.size() != b.components.size())
        return false;
    for (std::size_t i = 0; i < a.components.size(); ++i)
        if (a.components[i].kind != b.components[i].kind || a.components[i].name != b.components[i].name)
            return false;
    return true;
}

BackupManifest reparse(const std::string& json, const char* form) {
    try {
        return BackupManifest::from_json(json);
    } catch (const std::exception& e) {
        fail(std::string("the ") + form + " form of a parsed manifest does not parse back: " + e.what() + "\n" +
             json);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    BackupManifest m;
    try {
        m = BackupManifest::from_json(text);
    } catch (const std::invalid_argument&) {
        return 0;
    } catch (const std::exception& e) {
        bartl_fuzz::unexpected("BackupManifest::from_json", e);
        return 0;
    }
    if (m.format != 1) fail("accepted format " + std::to_string(m.format));
    if (!m.blob_sha256.empty() && m.blob_sha256.size() != 64) fail("accepted a blob.sha256 of the wrong length");

    // The sidecar form needs a blob: an in-archive manifest (no "blob") has no sidecar form.
    if (!m.blob_sha256.empty()) {
        std::string side;
        try {
            side = m.to_json();
        } catch (const std::exception& e) {
            fail(std::string("to_json() of a parsed manifest throws: ") + e.what());
        }
        const BackupManifest s = reparse(side, "sidecar");
        if (!same_base(m, s) || s.blob_name != m.blob_name || s.blob_size != m.blob_size ||
            s.blob_sha256 != m.blob_sha256 || s.files != m.files || s.bytes != m.bytes)
            fail("sidecar round trip changed a field");
        if (s.to_json() != side) fail("sidecar JSON is not stable under a round trip");
    }

    const BackupManifest a = reparse(m.to_archive_json(), "in-archive");
    if (!same_base(m, a)) fail("in-archive round trip changed a field");
    return 0;
}
