// One way to stop work: a cancellation token, and a call context (token + deadline) that
// every store call and every long step takes. bartld's process token is cancelled by
// SIGTERM/SIGINT; a backup job's token is a child of it that the server also cancels when
// the app dies; a D-Bus worker's token is a child cancelled when the bus shuts down.
// Cancelling a parent cancels every child; a child's cancel() leaves its parent alone.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace bartl {

/// A shared cancellation flag with an optional parent and an optional poll function (the
/// process token polls for a pending SIGTERM). Copies share the same flag. Thread-safe.
class CancelToken {
public:
    /// A new, uncancelled token without a parent.
    CancelToken();

    /// A token cancelled when this one is, or by its own cancel().
    CancelToken child() const;

    /// Cancels this token (and its children). The first reason is kept ("bartld is stopping").
    void cancel(const std::string& reason) const;
    /// True once this token or an ancestor is cancelled, or a poll function says so.
    bool cancelled() const;
    /// Why it was cancelled ("" when it is not).
    std::string reason() const;
    /// Throws StopRequested("stop requested: <what> (<reason>)") when cancelled; `what` names the interrupted
    /// step ("restore of backup 3f9a0c1d").
    void check(const std::string& what) const;

    /// Installs a function polled by cancelled() (bartld: "SIGTERM or SIGINT is pending").
    /// Returning true cancels the token with `reason`. Not thread-safe against cancelled();
    /// set it before other threads use the token.
    void set_poll(std::function<bool()> poll, std::string reason) const;

    /// The process-wide token every start of bartld hangs its work on.
    static const CancelToken& process();

private:
    struct State;
    explicit CancelToken(std::shared_ptr<State> state);
    std::shared_ptr<State> state_;
};

/// A point in time after which a call gives up (steady clock).
class Deadline {
public:
    /// Never expires.
    Deadline() = default;
    /// Expires `timeout` from now.
    static Deadline after(std::chrono::steady_clock::duration timeout);
    /// True when the deadline is set and passed.
    bool expired() const;
    /// Time left (zero when expired; a large value when never).
    std::chrono::steady_clock::duration remaining() const;
    /// The earlier of two deadlines.
    Deadline earliest(const Deadline& other) const;
    /// True when it never expires.
    bool never() const noexcept { return !set_; }

private:
    bool set_ = false;
    std::chrono::steady_clock::time_point at_{};
};

/// What a store call or a long step runs under: cancellation and a deadline. Cheap to copy.
struct Context {
    CancelToken cancel = CancelToken::process();
    Deadline deadline;

    /// This context with a deadline `timeout` from now, or the current one if earlier.
    Context with_timeout(std::chrono::steady_clock::duration timeout) const;
    /// This context with its own child token (cancelling it leaves this one alone).
    Context child() const;
    /// Throws StopRequested when cancelled, RuntimeError "<what>: deadline passed" when the
    /// deadline has passed. Called between chunks of long work.
    void check(const std::string& what) const;
};

}  // namespace bartl
