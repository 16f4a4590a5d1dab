import EdshimCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Checks: whether a registration may be made (a process that really is the shim,
/// the port not published by another dockerd, no overlapping address).
extension Registrar {
    /// `edshim resync` registers running shims on their behalf: accepted only for a
    /// process that really is a shim publishing exactly this port, in this server's
    /// network namespace, from the shim's own user (or root for a shim of this
    /// server's user), and never over a newer live shim's registration.
    func authorizeOnBehalf(of pid: Int32, _ request: RegisterRequest, peer: PeerCredentials) -> Result<Owner, WireError> {
        // /proc shows threads by their ids too; a shim is a process.
        if let process = ProcessTable.threadGroup(of: pid), process != pid {
            return .failure(WireError(.permissionDenied, "\(pid) is a thread of process \(process), not a process: name the shim's process id"))
        }
        let shim: ShimProcesses.Shim
        switch self.shim(pid, publishing: request, otherwise: "is not a running edshim shim") {
        case .success(let found): shim = found
        case .failure(let refusal): return .failure(refusal)
        }
        // Any local user can name a process edshim and give it docker-proxy flags, also
        // a setuid program's that runs as root (sudo, at its password prompt): only a
        // process running this server's edshim is a shim.
        switch ShimProcesses.executableCheck(of: pid) {
        case .same:
            break
        case .other(let path, let own):
            return .failure(WireError(.permissionDenied, "process \(pid) runs \(path), not this server's edshim (\(own)): a shim is registered on its behalf only when it runs the same edshim (dockerd's --userland-proxy-path, or a docker-proxy symlink to it)"))
        case .unreadable:
            return .failure(WireError(.permissionDenied, "cannot tell which program process \(pid) runs (/proc/\(pid)/exe cannot be read: another user's process, to a server not run as root)"))
        }
        // Root (resync, run by systemd) registers only shims of its own user or of this
        // server's (dockerd's shims run as dockerd's user), never another user's.
        let serverUser = getuid()
        let shimUser = ProcessTable.userID(of: pid)
        guard shimUser == peer.uid || (peer.uid == 0 && shimUser == serverUser) else {
            let runsAs = shimUser.map { "runs as uid \($0)" } ?? "has gone"
            return .failure(WireError(.permissionDenied, "process \(pid) \(runsAs): a shim is registered on its behalf only by its own user, or by root for a shim of this server's user (uid \(serverUser)), as dockerd's are"))
        }
        if let refusal = newerShimRefusal(request.key, for: shim.owner) { return .failure(refusal) }
        return .success(shim.owner)
    }

    /// The refusal of a registration on behalf of `owner` when a newer shim, still
    /// running, holds `key` (resync must not put back the shim it replaced).
    func newerShimRefusal(_ key: RegistrationKey, for owner: Owner) -> WireError? {
        guard let current = registry[key]?.owner, current != owner,
              ProcessTable.owner(of: current.pid) == current, current.startTime > owner.startTime else { return nil }
        return WireError(.notOwner, "\(key) belongs to a newer shim (\(current)); left in place")
    }

    /// The shim process `pid`, if it is one and publishes exactly what `request` asks
    /// (its name, flags and start time, from /proc); else the refusal.
    func shim(_ pid: Int32, publishing request: RegisterRequest, otherwise notAShim: String) -> Result<ShimProcesses.Shim, WireError> {
        guard let shim = ShimProcesses.shim(pid: pid) else {
            // Gone between its request and this look (killed just after asking, reaped
            // or not yet), or hidden from this server: nothing says it is not a shim.
            guard let present = ProcessTable.owner(of: pid), ProcessTable.liveness(of: present) == .running else {
                return .failure(WireError(.unavailable, "process \(pid) has exited, or /proc does not show it to this server (mounted with hidepid?): it cannot be checked"))
            }
            return .failure(WireError(.permissionDenied, "process \(pid) \(notAShim)"))
        }
        guard ShimProcesses.sharesNetworkNamespace(pid) != false else {
            return .failure(WireError(.foreignNamespace, "process \(pid) runs in another network namespace than this server (a dockerd inside a container?): the ports it publishes are not this host's, and Envoy here cannot serve them"))
        }
        guard shim.arguments.key == request.key, shim.arguments.container == request.container else {
            return .failure(WireError(.permissionDenied, "process \(pid) publishes \(shim.arguments.key) → \(shim.arguments.container), not \(request.key) → \(request.container)"))
        }
        return .success(shim)
    }

    /// The refusal of `key` (to `container`) when a registration on another address
    /// overlaps it: one of the same container (`-p 8080:80 -p 127.0.0.1:8080:81`) is
    /// told apart from another container's.
    func overlapRefusal(_ key: RegistrationKey, to container: SocketEndpoint) -> WireError? {
        guard let conflict = registry.overlapping(key).first else { return nil }
        let reason = "\(key) overlaps \(conflict.key): Envoy cannot listen on both"
        guard conflict.container.ip != container.ip else {
            return WireError(.addressConflict, "\(reason), and this container (\(container.ip)) already publishes \(conflict.key) (to \(conflict.container), by \(conflict.owner)): publish host port \(key.host.port) on one address only")
        }
        return WireError(.addressConflict, "\(reason), already published for \(conflict.container) by \(conflict.owner): publish another host port (docker ps --filter publish=\(key.host.port) shows the container)")
    }

    /// The refusal of `key` for `owner` when another shim holds it that a process
    /// still running started, and not the one that started `owner`: two dockerds (or a
    /// dockerd and a shim run by hand) publishing one port. A port is published once,
    /// as docker-proxy's bind would say. A shim of the same dockerd replaces the
    /// registration (that dockerd published the port again: it stops a port's proxy
    /// before it lets the port go); so does the next dockerd's for a shim whose
    /// dockerd exited (`ShimStarters`).
    func publishedRefusal(_ key: RegistrationKey, for owner: Owner) -> WireError? {
        guard let holder = registry[key], holder.owner != owner, let starter = starters.starter(of: holder.owner),
              starter != ProcessTable.starter(of: owner.pid) else { return nil }
        return WireError(.portInUse, BindRefusal.alreadyPublished(key, for: holder.container, by: holder.owner, startedBy: starter, hint: " (docker ps --filter publish=\(key.host.port), against each dockerd)"))
    }
}
