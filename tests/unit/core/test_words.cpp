// count_noun(): the number of a counted noun.
#include <catch2/catch.hpp>

#include "core/words.hpp"

using namespace bartl;

TEST_CASE("words: singular for exactly one, plural otherwise", "[core]") {
    CHECK(count_noun(1, "file", "files") == "1 file");
    CHECK(count_noun(0, "file", "files") == "0 files");
    CHECK(count_noun(2, "file", "files") == "2 files");
    CHECK(count_noun(11, "entry", "entries") == "11 entries");
    CHECK(count_noun(1, "entry", "entries") == "1 entry");
    CHECK(count_noun(18446744073709551615ull, "file", "files") == "18446744073709551615 files");
}
