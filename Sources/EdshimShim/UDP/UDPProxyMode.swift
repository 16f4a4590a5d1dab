import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// UDP ports: edshim proxies them itself (Envoy is not involved), for the shim's
/// `-proto udp` and for `edshim udp-proxy`.
public enum UDPProxyMode {
    /// For `edshim udp-proxy`, first thing in `main`, on its only thread: SIGINT and
    /// SIGTERM are blocked from here on, so one that comes while the command line is
    /// parsed waits for `run`'s signalfd (and still ends in exit 0) instead of killing
    /// the process.
    public static func blockTerminationSignalsEarly() {
        _ = try? TerminationSignals.block()
    }

    /// `edshim udp-proxy` refused before it runs (a bad flag or variable): `1\n<reason>`
    /// on fd 3 when it is a pipe, as `run` reports a failure; the caller prints the
    /// reason, with the usage.
    public static func reportRefusal(_ reason: String) {
        var status = StatusPipe.detect()
        status.reportFailure(reason, logged: false)
    }

    /// `edshim udp-proxy`: binds `host`, proxies to `container` until SIGINT or
    /// SIGTERM, then exits 0. Reports on fd 3 like the shim when fd 3 is a pipe. Runs
    /// on the process's only thread (`blockTerminationSignalsEarly`), so that the
    /// signals reach the proxy's signalfd, with their sender.
    public static func run(host: SocketEndpoint, container: SocketEndpoint, options: UDPProxyOptions) -> Never {
        var status = StatusPipe.detect(expected: false)
        let signals: TerminationSignals
        do throws(ShimFailure) {
            signals = try TerminationSignals.install()
        } catch {
            status.reportFailure(error.description)
            exit(1)
        }
        let arguments = ShimArguments(proto: .udp, host: host, container: container)
        exit(serve(arguments, options: options, status: &status, signals: signals))
    }

    /// Serves one UDP port: binds it (or takes dockerd's socket on fd 4 with
    /// `-use-listen-fd`), reports `0\n` once it receives, proxies until a termination
    /// signal. Returns the exit status.
    /// `grace` (the shim's, from dockerd's environment) carries the port on through a
    /// dockerd restart (`UDPHandover`).
    static func serve(_ arguments: ShimArguments, options: UDPProxyOptions, grace: DockerdRestartGrace? = nil, status: inout StatusPipe, signals: TerminationSignals) -> Int32 {
        let proxy: UDPProxy
        do {
            let shared = (grace?.seconds ?? 0) > 0
            // Only a shim (given a grace, if 0) was started by a dockerd, which may
            // follow one whose proxies wait under the grace; `udp-proxy` run by hand not.
            let listener = arguments.useListenFD ? try UDPListener.adopt(for: arguments)
                : try UDPListener.bind(arguments.host, sharedAcrossRestarts: shared, succeedsPredecessors: grace != nil)
            let handover = grace.flatMap { UDPHandover(grace: $0, arguments: arguments, listener: listener) }
            proxy = try UDPProxy(listener: listener, container: arguments.container, options: options, signals: signals, handover: handover)
        } catch {
            status.reportFailure(error.description)
            return 1
        }
        status.reportReady()
        let idle = Double(options.idleTimeoutMilliseconds) / 1000
        ShimLog.info("proxying udp \(arguments.host) → \(arguments.container) (flows idle for \(idle) s close; at most \(options.maxFlows))")
        return proxy.run() ? 0 : 1
    }
}
