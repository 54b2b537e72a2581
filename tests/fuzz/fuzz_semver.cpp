// libFuzzer target: bartl::Version::parse / try_parse (src/core/semver.hpp).
// Contract checked: parse() throws only std::invalid_argument; try_parse() agrees with parse();
// a parsed version prints as the input (SemVer text has one spelling) and re-parses equal;
// precedence is reflexive and antisymmetric against a few fixed versions.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/semver.hpp"
#include "fuzz_common.hpp"

using bartl::Version;
using bartl_fuzz::fail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    Version v;
    try {
        v = Version::parse(text);
    } catch (const std::invalid_argument&) {
        if (Version::try_parse(text)) fail("try_parse accepts what parse rejects");
        return 0;
    } catch (const std::exception& e) {
        bartl_fuzz::unexpected("Version::parse", e);
        return 0;
    }
    const auto t = Version::try_parse(text);
    if (!t) fail("try_parse rejects what parse accepts");
    if (bartl::compare(*t, v) != 0) fail("try_parse and parse disagree");

    const std::string s = v.str();
    if (s != text) fail("str() \"" + s + "\" differs from the parsed text");
    Version again;
    try {
        again = Version::parse(s);
    } catch (const std::exception& e) {
        fail(std::string("str() output does not re-parse: ") + e.what());
    }
    if (bartl::compare(v, again) != 0 || again.build != v.build) fail("re-parsed version differs");
    if (bartl::compare(v, v) != 0) fail("compare(v, v) != 0");

    static const char* const fixed[] = {"0.0.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0",
                                        "1.0.0+build", "2.1.0", "18446744073709551615.0.0"};
    for (const char* f : fixed) {
        const Version o = Version::parse(f);
        const int a = bartl::compare(v, o), b = bartl::compare(o, v);
        if ((a < 0 && b <= 0) || (a > 0 && b >= 0) || (a == 0 && b != 0))
            fail(std::string("compare is not antisymmetric against ") + f);
    }
    return 0;
}
