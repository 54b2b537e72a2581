// The one retry loop of the stores (bartl(7) "STORES"): a call that failed in a way that may
// pass (a timeout, a dropped connection, HTTP 5xx, 429/SlowDown) is tried again after an
// exponential backoff with full jitter, until it succeeds, fails for good, or the budget
// ([store] retry_for) or the call's deadline runs out. Store implementations wrap each
// request in with_retries(); callers never retry.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "core/error.hpp"
#include "util/cancel.hpp"

namespace bartl {

/// A store call failed in a way that may pass if tried again. Thrown by a store's request
/// code inside with_retries(); what escapes with_retries() is a StoreUnavailable.
class TransientStoreError : public StoreUnavailable {
public:
    using StoreUnavailable::StoreUnavailable;
};

/// Backoff settings. The delay before try n (n >= 1 retries) is a uniformly random duration
/// in [0, min(max_backoff, initial * 2^(n-1))] (AWS's "full jitter").
struct RetryPolicy {
    std::chrono::milliseconds initial{200};
    std::chrono::milliseconds max_backoff{10000};
    std::chrono::milliseconds budget{300000};  ///< total time retries may take ([store] retry_for)
};

/// The upper bound of the jittered delay before retry `n` (1-based). Pure.
std::chrono::milliseconds backoff_cap(const RetryPolicy& policy, unsigned n);

/// Runs `attempt` until it returns without throwing TransientStoreError. Between tries it
/// sleeps the jittered backoff (waking at once when `ctx` is cancelled: StopRequested). When
/// the budget or `ctx`'s deadline leaves no time for another try, the last transient error is
/// rethrown as StoreUnavailable "<what>: <error> (after N tries in T s)" ("<what>: " left out when
/// the error starts with it already). Other exceptions
/// pass through at once. `on_retry` (may be empty) hears of each retry, for the log.
void with_retries(const Context& ctx, const RetryPolicy& policy, const std::string& what,
                  const std::function<void()>& attempt,
                  const std::function<void(unsigned n, const std::string& error)>& on_retry = {});

}  // namespace bartl
