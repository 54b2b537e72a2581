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
    std::string run;  ///< RunEntry::run of bartld's newest entry; "" when there is none
    std::optional<std::string> decision, decision_time;
    std::optional<std::string> error, error_time;  ///< bartld's newest entry of priority err or worse
};

/// The three entries `bartlctl status` looks up in the journal, each the newest of the
/// instance that matches (sd_journal_add_match(3), so each costs one seek however much the
/// run or its app logged):
struct RunLookups {
    std::optional<RunEntry> newest{};    ///< bartld's newest entry (SYSLOG_IDENTIFIER=bartld)
    std::optional<RunEntry> decision{};  ///< bartld's newest decision (MESSAGE_ID of the decision event)
    std::optional<RunEntry> error{};     ///< bartld's newest entry of PRIORITY 0..3
};

/// The LastRun of bartld's newest run: its decision and error only when the entries found
/// belong to that run. An error or a decision of an earlier run is never taken: after a
/// failed start (a config typo, exit 78) was fixed and the instance ran again, that failure
/// is not the last run's. An app's or hook's line (identifier other than "bartld") is never
/// the run's error, nor an entry of priority better than err.
LastRun last_run(const RunLookups& found);

}  // namespace bartl
