#include "store/retry.hpp"

#include <algorithm>
#include <random>
#include <thread>

#include <fmt/format.h>

namespace bartl {

std::chrono::milliseconds backoff_cap(const RetryPolicy& policy, unsigned n) {
    if (n == 0) return std::chrono::milliseconds(0);
    const unsigned shift = std::min(n - 1, 30u);
    const auto grown = policy.initial.count() * (std::int64_t{1} << shift);
    return std::chrono::milliseconds(std::min<std::int64_t>(grown, policy.max_backoff.count()));
}

void with_retries(const Context& ctx, const RetryPolicy& policy, const std::string& what,
                  const std::function<void()>& attempt,
                  const std::function<void(unsigned, const std::string&)>& on_retry) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    const auto started = std::chrono::steady_clock::now();
    const Deadline budget = ctx.deadline.earliest(Deadline::after(policy.budget));
    for (unsigned tries = 1;; ++tries) {
        ctx.cancel.check(what);
        try {
            attempt();
            return;
        } catch (const TransientStoreError& e) {
            const auto cap = backoff_cap(policy, tries);
            std::uniform_int_distribution<std::int64_t> pick(0, cap.count());
            const auto delay = std::chrono::milliseconds(pick(rng));
            if (budget.remaining() <= delay) {
                const double secs =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
                // An error that already names the call (the SFTP store's) is not prefixed twice.
                const std::string error = e.what();
                const bool named = error.rfind(what + ": ", 0) == 0;
                throw StoreUnavailable(fmt::format("{}{} (after {} tr{} in {:.1f} s)", named ? "" : what + ": ",
                                                   error, tries, tries == 1 ? "y" : "ies", secs));
            }
            if (on_retry) on_retry(tries, e.what());
            // Sleep in slices, so a stop request ends the wait at once.
            const auto until = std::chrono::steady_clock::now() + delay;
            while (std::chrono::steady_clock::now() < until) {
                ctx.cancel.check(what);
                std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
                    until - std::chrono::steady_clock::now(), std::chrono::milliseconds(50)));
            }
        }
    }
}

}  // namespace bartl
