import EdshimCore

/// The registered ports another program listens on, at their very address: it took
/// the port while Envoy did not hold it (Envoy restarting), Envoy cannot bind it, and
/// the port's clients reach that program instead of the container. The processes are
/// looked up in /proc (every process's descriptors) only when the sockets listening
/// on registered addresses change, not at every check; none are seen by a server not
/// run as root.
struct PortsHeldByOthers {
    private var inodes: Set<UInt64> = []
    private var held: [RegistrationKey: [PortHolders.Holder]] = [:]
    /// The processes holding some of the sockets given (`PortHolders.holding`).
    var holding: ([ListeningSocket]) -> [PortHolders.Holder] = { PortHolders.holding($0) }

    /// Of `registrations`, those whose address a process other than Envoy and
    /// edshim's own listens on, with those processes.
    mutating func update(_ registrations: [Registration], listening table: [ListeningSocket]) -> [RegistrationKey: [PortHolders.Holder]] {
        let hosts = Set(registrations.map(\.key.host))
        let onRegistered = table.filter { hosts.contains($0.endpoint) }
        let current = Set(onRegistered.map(\.inode))
        if current != inodes {
            inodes = current
            let holders = onRegistered.isEmpty ? [] : holding(onRegistered)
            held = [:]
            for registration in registrations {
                let onIt = holders.filter { $0.addresses.contains(registration.key.host) }
                let ours = onIt.contains { $0.isEnvoy || $0.name == ShimProcesses.processName || $0.pid == registration.owner.pid }
                if !onIt.isEmpty, !ours { held[registration.key] = onIt }
            }
        }
        let keys = Set(registrations.map(\.key))
        return held.filter { keys.contains($0.key) }
    }
}
