// This machine's identity as bartl records it (sidecars, the store writer record).
#pragma once

#include <string>

namespace bartl {

/// gethostname(2), or "unknown" when it fails.
std::string host_name();

}  // namespace bartl
