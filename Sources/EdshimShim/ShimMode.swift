import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// The docker-proxy drop-in: what dockerd runs for each published port.
///
/// TCP: register with `edshim server`, report `0\n` on fd 3 once Envoy listens on
/// the port, sleep until SIGINT/SIGTERM, deregister, exit 0. Plain system calls on
/// one thread: a host runs one of these per published port.
public enum ShimMode {
    /// How long the server may take to confirm Envoy serves the port (it answers
    /// itself after its own, shorter readiness timeout): well under dockerd's 16 s.
    static let registerTimeoutMilliseconds: Int64 = 12_000
    /// How long deregistration may take, so the shim exits within a second.
    static let deregisterTimeoutMilliseconds: Int64 = 900

    /// Runs the shim with docker-proxy's arguments (program name excluded); never returns.
    public static func run(_ arguments: [String]) -> Never {
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
            exit(serve(shimArguments, status: &status, signals: signals))
        }
    }

    private static func serve(_ arguments: ShimArguments, status: inout StatusPipe, signals: TerminationSignals) -> Int32 {
        switch arguments.proto {
        case .sctp:
            status.reportFailure("edshim does not proxy SCTP: publish the port as tcp or udp, or use the stock docker-proxy for SCTP ports")
            return 1
        case .udp:
            return serveUDP(arguments, status: &status, signals: signals)
        case .tcp:
            return serveTCP(arguments, status: &status, signals: signals)
        }
    }

    /// UDP needs no server: edshim proxies the port itself, with the flow bounds
    /// dockerd's environment sets (its command line is docker-proxy's).
    private static func serveUDP(_ arguments: ShimArguments, status: inout StatusPipe, signals: TerminationSignals) -> Int32 {
        let options: UDPProxyOptions
        do throws(ArgumentError) {
            options = try UDPProxyOptions.fromEnvironment { name in getenv(name).map { String(cString: $0) } }
        } catch {
            status.reportFailure("\(error.description) (set in dockerd's environment)")
            return 1
        }
        return UDPProxyMode.serve(arguments, options: options, status: &status, signals: signals)
    }

    private static func serveTCP(_ arguments: ShimArguments, status: inout StatusPipe, signals: TerminationSignals) -> Int32 {
        let client = ServerClient.fromEnvironment()
        var held: HeldListenSocket?
        do {
            if arguments.useListenFD { held = try HeldListenSocket.adopt(for: arguments) }
        } catch {
            status.reportFailure(error.description)
            return 1
        }
        let request = RegisterRequest(key: arguments.key, container: arguments.container, heldSocketInode: held?.inode)
        do {
            let response = try client.exchange(
                .register(request),
                deadline: .after(milliseconds: registerTimeoutMilliseconds),
                interrupt: signals.descriptor
            )
            if case .failure(let error) = response {
                status.reportFailure(error.message)
                return 1
            }
        } catch .interrupted {
            ShimLog.info("stopped while registering \(arguments.key)")
            deregister(arguments.key, client: client)
            return 0
        } catch {
            status.reportFailure("registering \(arguments.key) → \(arguments.container): \(error.description)")
            deregister(arguments.key, client: client)
            return 1
        }
        let queued = held?.retire() ?? []
        status.reportReady()
        ShimLog.info("serving \(arguments.key) → \(arguments.container) through Envoy")
        if !TCPHandover.relay(queued, to: arguments.container, signals: signals) { signals.wait() }
        deregister(arguments.key, client: client)
        return 0
    }

    private static func deregister(_ key: RegistrationKey, client: ServerClient) {
        do {
            let response = try client.exchange(.deregister(key), deadline: .after(milliseconds: deregisterTimeoutMilliseconds))
            if case .failure(let error) = response, error.code != .notRegistered {
                ShimLog.info("deregistering \(key): \(error.message)")
            }
        } catch {
            ShimLog.info("deregistering \(key): \(error.description)")
        }
    }
}
