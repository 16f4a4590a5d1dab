import EdshimCore
import Logging

/// What a restarting server keeps of its state file: the registrations whose shim
/// still runs (the same PID and start time, watched from then on) and, where that
/// process can be read as a shim, publishes the very port and container the file
/// says. The file is the server's own, but one edited by hand, or written for a shim
/// whose PID and start time a later shim cannot share, must not publish a port no
/// shim asked for (nor one whose address Envoy cannot bind, rejecting the update):
/// such an entry is dropped, logged, and its shim's real port is taken back from
/// `lds.json` or registered again by resync. A registration whose owner cannot be
/// read as a shim (a client of the protocol, not a shim) is kept.
enum RestoredRegistrations {
    static func live(_ saved: [Registration], watchedBy owners: OwnerWatcher, logger: Logger) -> [Registration] {
        saved.filter { registration in
            if let shim = ShimProcesses.shim(pid: registration.owner.pid), shim.owner == registration.owner,
               shim.arguments.key != registration.key || shim.arguments.container != registration.container {
                logger.warning("the state file's registration is not what its shim publishes: left out (was the file edited?)", metadata: [
                    "key": "\(registration.key)", "container": "\(registration.container)", "owner_pid": "\(registration.owner.pid)",
                    "shim_publishes": "\(shim.arguments.key) → \(shim.arguments.container)",
                ])
                return false
            }
            return owners.watch(registration.owner)
        }
    }
}
