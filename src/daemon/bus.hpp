// bartld on D-Bus: the app.bartl.Instance1 object (dbus/app.bartl.Instance1.xml) on its own
// thread. The adaptor is thin: it reads the Status snapshot, hands Backup() to the Server
// through Status, and runs store I/O (ListBackups, Verify, Plan) on worker threads, so no
// D-Bus call ever waits for a backup, the app or the lifecycle.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "daemon/status.hpp"

namespace bartl {

class BusService;

/// The connection, the bus name and the thread that serves them.
class Bus {
public:
    /// Connects to the system bus ($DBUS_SYSTEM_BUS_ADDRESS, else the standard socket), takes
    /// the instance's name (daemon/bus_name.hpp) without queueing, exports the object and
    /// starts the D-Bus thread. Returns nullptr after logging a warning when there is no bus
    /// or the bus policy does not let us own the name: bartld serves without D-Bus (e.g. in a
    /// container). Throws LockedError naming the owner's PID when another process owns the
    /// name (a second bartld for the instance). `config` and `status` must outlive the Bus.
    static std::unique_ptr<Bus> open(const Config& config, Status& status);

    /// Stops the thread (a running Verify is cancelled, pending replies are dropped) and
    /// closes the connection, which releases the name.
    ~Bus();
    Bus(const Bus&) = delete;
    Bus& operator=(const Bus&) = delete;

    /// The well-known name owned, e.g. "app.bartl.Instance1.notes".
    const std::string& name() const noexcept;

    /// The state is committed (Status has its state ID): looks up this state's last backup
    /// in the store on a worker thread, for LastSuccessfulBackup after a restart.
    void state_ready();

private:
    explicit Bus(std::unique_ptr<BusService> service);
    std::unique_ptr<BusService> service_;
};

}  // namespace bartl
