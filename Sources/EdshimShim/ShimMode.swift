import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// The docker-proxy drop-in: what dockerd runs for each published port.
///
/// TCP: register with `edshim server`, report `0\n` on fd 3 once Envoy listens on
/// the port (or, while the server or Envoy is not there, once the shim serves it
/// itself), sleep until SIGINT/SIGTERM, deregister, exit 0. UDP: proxy the port.
/// Plain system calls on one thread: a host runs one of these per published port.
public enum ShimMode {
    /// Runs the shim with docker-proxy's arguments (program name excluded); never returns.
    public static func run(_ arguments: [String]) -> Never {
        let dockerd = getppid()
        var status = StatusPipe.detect()
        let signals: TerminationSignals
        do {
            signals = try TerminationSignals.install()
        } catch {
            status.reportFailure(error.description)
            exit(1)
        }
        let invocation: ShimInvocation
        do {
            invocation = try ShimInvocation.parse(arguments)
        } catch {
            status.reportFailure("\(error.description) (edshim \(arguments.joined(separator: " ")))")
            exit(1)
        }
        switch invocation {
        case .version:
            print(EdshimVersion.banner)
            exit(0)
        case .help:
            print(ShimInvocation.usage)
            exit(0)
        case .run(let shimArguments):
            exit(serve(shimArguments, dockerd: dockerd, status: &status, signals: signals))
        }
    }

    private static func serve(_ arguments: ShimArguments, dockerd: pid_t, status: inout StatusPipe, signals: TerminationSignals) -> Int32 {
        switch arguments.proto {
        case .sctp:
            status.reportFailure("edshim does not proxy SCTP, and dockerd runs it for every published port: publish this port as tcp or udp, or run the container with --network host, where it takes the host's SCTP port itself")
            return 1
        case .udp:
            return serveUDP(arguments, dockerd: dockerd, status: &status, signals: signals)
        case .tcp:
            return TCPShim.serve(arguments, dockerd: dockerd, status: &status, signals: signals)
        }
    }

    /// UDP needs no server: edshim proxies the port itself, with the flow bounds
    /// dockerd's environment sets (its command line is docker-proxy's).
    private static func serveUDP(_ arguments: ShimArguments, dockerd: pid_t, status: inout StatusPipe, signals: TerminationSignals) -> Int32 {
        let options: UDPProxyOptions
        let grace: DockerdRestartGrace
        do throws(ArgumentError) {
            options = try UDPProxyOptions.fromEnvironment()
        } catch {
            status.reportFailure("\(error.description) (set in dockerd's environment)")
            return 1
        }
        do throws(ShimFailure) {
            grace = try DockerdRestartGrace.fromEnvironment(dockerd: dockerd)
        } catch {
            status.reportFailure(error.description)
            return 1
        }
        return UDPProxyMode.serve(arguments, options: options, grace: grace, status: &status, signals: signals)
    }
}
