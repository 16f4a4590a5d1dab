import CEdshimLinux
import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// The previous dockerd's proxies of a UDP port, still carrying it under
/// `EDSHIM_DOCKERD_RESTART_GRACE` after their dockerd exited (`UDPHandover`): they
/// bound it with SO_REUSEPORT and wait for the next dockerd's proxy to bind beside
/// them. A next dockerd run without the variable starts proxies that would bind
/// without it, be refused, and have dockerd drop the container's other ports with
/// them; such a proxy binds beside its predecessors instead (`UDPListener`).
enum UDPPredecessors {
    /// The process ids of the shims that keep `host` from being bound, when each
    /// socket in the way is one of them: bound to `host` itself, held by a shim of
    /// this edshim publishing the same port; with `dockerdExited`, only one that init
    /// (PID 1) has taken over since its dockerd exited. Nil otherwise: another
    /// program, a proxy of another address that overlaps this one (127.0.0.1 and
    /// 0.0.0.0), or a shim of a dockerd still running when `dockerdExited`, where a port
    /// in use is refused as docker-proxy refuses it. `unseen` when the sockets cannot be
    /// seen (no `udp_diag`). With `dockerdExited`, a shim a subreaper took over (tini, a
    /// supervisor above dockerd) is not told from one of another dockerd that runs:
    /// refused too (keep the variable the same for both dockerds there).
    static func shims(on host: SocketEndpoint, dockerdExited: Bool, unseen: [Int32]? = nil) -> [Int32]? {
        guard case .success(let sockets) = ListenTable.unconnectedUDPSockets(family: host.family) else { return unseen }
        let inTheWay = sockets.filter { $0.keepsFromBinding(host) }
        guard !inTheWay.isEmpty, inTheWay.allSatisfy({ $0.endpoint == host }) else { return nil }
        let key = RegistrationKey(proto: .udp, host: host)
        var pids: [Int32] = []
        for socket in inTheWay {
            guard let shim = ShimProcesses.shim(holding: socket.inode, publishing: key),
                  !dockerdExited || ProcessTable.starter(of: shim.owner.pid) == nil else { return nil }
            pids.append(shim.owner.pid)
        }
        return pids
    }

    /// Tells the predecessors `pids` on `host`, now that this proxy is bound beside
    /// them, to leave the port (SIGTERM): each looks for its successor only once a
    /// second, and a successor that dockerd stops sooner (its container exited while
    /// dockerd was down) would leave it carrying the port, and sending to an address
    /// another container may get, until its grace ends. Only a process that still is
    /// a shim of this port and lost its dockerd (taken over by init) is signalled,
    /// through a pidfd, so never one that took its pid since. Where that fails, the
    /// predecessor still leaves once it sees this proxy.
    static func release(_ pids: [Int32], of host: SocketEndpoint) {
        let key = RegistrationKey(proto: .udp, host: host)
        for pid in pids {
            let pinned = edshim_pidfd_open(pid)
            guard pinned >= 0 else { continue }
            defer { close(pinned) }
            guard let shim = ShimProcesses.shim(pid: pid), shim.arguments.key == key,
                  ProcessTable.starter(of: pid) == nil else { continue }
            if edshim_pidfd_send_signal(pinned, SIGTERM) != 0 {
                ShimLog.warning("cannot tell the previous dockerd's proxy (pid \(pid)) to leave udp \(host): \(ErrorText.describe(errno)); it leaves once it sees this proxy (it looks once a second)")
            }
        }
    }
}
