// What the journal tells of an instance's last bartld run, for `bartlctl status` when bartld
// does not answer (bartlctl(1) "status"). Pure: the entries are read by the caller.
#pragma once

#include <optional>
#include <string>

namespace bartl {

/// One journal entry with BARTL_INSTANCE=NAME (bartld's own or a line of its app or hooks).
struct RunEntry {
    /// Which bartld run wrote it: _SYSTEMD_INVOCATION_ID= under systemd (one per unit start),
    /// else "PID " + _PID= (bartld run by hand).
    std::string run;
    std::string time;        ///< when it was written (RFC 3339), passed through
    int priority = 6;        ///< PRIORITY= (syslog(3): 3 = err)
    std::string identifier;  ///< SYSLOG_IDENTIFIER= ("bartld" for bartld's own entries)
    std::optional<std::string> decision;  ///< BARTL_DECISION= when it has one
    std::string message;     ///< MESSAGE=
};

/// The last run's decision and error; each unset when that run logged none.
struct LastRun {
    std::string run;  ///< RunEntry::run of the newest entry; "" before the first
    std::optional<std::string> decision, decision_time;
    std::optional<std::string> error, error_time;  ///< bartld's newest entry of priority err or worse
};

/// Folds entries newest first into the LastRun of the newest entry's run. An error or a
/// decision of an earlier run is never taken: after a failed start (a config typo, exit 78)
/// was fixed and the instance ran again, that failure is not the last run's.
class LastRunScan {
public:
    /// Takes the next older entry; false once it belongs to an earlier run or both facts are
    /// known (nothing older can change the result: stop reading).
    bool add(const RunEntry& entry);
    const LastRun& result() const noexcept { return last_; }

private:
    LastRun last_;
    bool started_ = false;
};

}  // namespace bartl
