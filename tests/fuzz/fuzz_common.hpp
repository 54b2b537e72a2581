// Shared helpers of the libFuzzer targets (tests/fuzz/README.md).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <typeinfo>

namespace bartl_fuzz {

/// A broken contract: print what and abort, so libFuzzer records the input as a crash.
[[noreturn]] inline void fail(const std::string& what) {
    std::fprintf(stderr, "\n*** bartl fuzz: contract broken: %s\n", what.c_str());
    std::fflush(stderr);
    std::abort();
}

/// An exception of a type the parser's contract does not list escaped it. A known, reported
/// finding can be tolerated for a long run meant to look for others: BARTL_FUZZ_TOLERATE=TEXT
/// lets an undocumented exception whose message contains TEXT pass.
inline void unexpected(const char* api, const std::exception& e) {
    static const char* tolerate = std::getenv("BARTL_FUZZ_TOLERATE");
    if (tolerate && *tolerate && std::string(e.what()).find(tolerate) != std::string::npos) return;
    fail(std::string(api) + " threw an undocumented exception type " + typeid(e).name() + ": " + e.what());
}

}  // namespace bartl_fuzz
