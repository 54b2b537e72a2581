// Random identifiers (state IDs, store IDs, backup IDs) from the kernel's CSPRNG.
#pragma once

#include <cstddef>
#include <string>

namespace bartl {

/// `bytes` random bytes from getrandom(2) as 2 * `bytes` lower-case hex digits. Throws
/// RuntimeError when getrandom fails.
std::string random_hex(std::size_t bytes);

/// A new state or store ID: 32 lower-case hex digits (128 bits).
inline std::string new_state_id() { return random_hex(16); }

}  // namespace bartl
