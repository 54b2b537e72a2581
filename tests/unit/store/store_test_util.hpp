// Helpers for the store and fs tests (shared ones live in tests/unit/test_util.hpp).
#pragma once

#include "../test_util.hpp"
