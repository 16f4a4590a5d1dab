import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// How long a port stays served after the dockerd that started its shim exited
/// without stopping it (`EDSHIM_DOCKERD_RESTART_GRACE`, from dockerd's environment;
/// 0, the default, withdraws it at once as the contract says).
///
/// dockerd stops a proxy with SIGINT; when dockerd itself exits, the kernel sends its
/// proxies SIGTERM (Pdeathsig). With `"live-restore": true` dockerd leaves its
/// containers running as it exits, and the dockerd that starts next publishes their
/// ports again with new proxies. Within the grace a TCP shim leaves its registration
/// in place until dockerd's new shim takes it over (Envoy carries the traffic, and its
/// listener never changes), and a UDP shim goes on proxying until dockerd's new shim
/// binds the port beside it (`UDPHandover`); either lets go if none comes (a crashed
/// dockerd whose containers are gone).
struct DockerdRestartGrace {
    static let variable = "EDSHIM_DOCKERD_RESTART_GRACE"
    /// The longest grace: a day.
    static let longestSeconds: Int64 = 86_400
    /// How often the shim looks whether dockerd's new shim took its port over.
    static let lookupIntervalMilliseconds: Int64 = 1000

    /// 0: off.
    let seconds: Int64
    /// The shim's parent at start.
    let dockerd: pid_t

    /// Reads `EDSHIM_DOCKERD_RESTART_GRACE`: seconds (`120`, `120s`) or a number with
    /// a unit (`2m`, `1h`), as `EDSHIM_UDP_IDLE_TIMEOUT`; a part of a second counts as
    /// a whole one.
    static func fromEnvironment(dockerd: pid_t) throws(ShimFailure) -> DockerdRestartGrace {
        guard let text = ProcessEnvironment.value(variable) else { return DockerdRestartGrace(seconds: 0, dockerd: dockerd) }
        guard let milliseconds = DurationText.milliseconds(text), milliseconds <= longestSeconds * 1000 else {
            throw ShimFailure("\(variable)=\(text) is not a grace edshim knows: give seconds (120, 120s) or a number with m or h (2m, 1h), at most 24 hours; 0 withdraws a port as soon as dockerd exits (set in dockerd's environment)")
        }
        return DockerdRestartGrace(seconds: (milliseconds + 999) / 1000, dockerd: dockerd)
    }

    /// Whether the shim keeps `arguments`' port now that `signal` came: it is the
    /// SIGTERM the kernel sends for dockerd (its parent at start, which the signal
    /// names as its sender) as dockerd exits, and the shim holds no socket of
    /// dockerd's (≥ 28 binds the port itself when it publishes it again, which the
    /// shim or Envoy must then have let go). SIGINT is dockerd stopping the proxy, and
    /// a SIGTERM from anyone else (`kill`, systemd stopping the whole cgroup) an order
    /// to stop: never kept.
    func applies(to arguments: ShimArguments, signal: TerminationSignals.Received) -> Bool {
        seconds > 0 && !arguments.useListenFD && signal.number == SIGTERM && signal.sender == dockerd && Self.exited(dockerd)
    }

    /// Whether `dockerd` exited. The kernel sends SIGTERM as the first of dockerd's
    /// threads exits, while the shim is still the child of the others: they get a
    /// moment to go. If dockerd is still there after that, the SIGTERM came some
    /// other way.
    private static func exited(_ dockerd: pid_t) -> Bool {
        let deadline = Deadline.after(milliseconds: 250)
        while getppid() == dockerd {
            if deadline.hasPassed { return false }
            usleep(2000)
        }
        return true
    }
}
