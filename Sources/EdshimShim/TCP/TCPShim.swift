import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// A TCP port: registered with the server and served by Envoy, or — when the server
/// or Envoy is not there — served by the shim itself until Envoy can take it
/// (`EDSHIM_FALLBACK=proxy`, the default; `fail` reports the reason to dockerd instead).
enum TCPShim {
    /// How long the server may take to confirm Envoy serves the port (it answers
    /// itself after its own, shorter readiness timeout): well under dockerd's 16 s.
    static let registerTimeoutMilliseconds = Int64(EdshimDefaults.shimRegisterTimeoutSeconds) * 1000
    /// How long deregistration may take, so the shim exits within a second.
    static let deregisterTimeoutMilliseconds: Int64 = 900

    /// Serves the port until a termination signal; `dockerd` is the shim's parent at start.
    static func serve(_ arguments: ShimArguments, dockerd: pid_t, status: inout StatusPipe, signals: TerminationSignals) -> Int32 {
        let client = ServerClient.fromEnvironment()
        let fallback: FallbackPolicy
        let grace: DockerdRestartGrace
        var held: HeldListenSocket?
        do throws(ShimFailure) {
            try ServerSocketSetting.check(client)
            fallback = try FallbackPolicy.fromEnvironment()
            grace = try DockerdRestartGrace.fromEnvironment(dockerd: dockerd)
            if arguments.useListenFD { held = try HeldListenSocket.adopt(for: arguments) }
        } catch {
            status.reportFailure(error.description)
            return 1
        }
        let request = RegisterRequest(key: arguments.key, container: arguments.container, heldSocketInode: held?.inode)
        // Why the shim serves the port itself, and the cause as its retries word it
        // (which then log only a new one).
        var unserved: (reason: String, cause: String)?
        var registerLater = true
        // A request that reached the server but got no answer may be registered.
        var inDoubt = false
        do {
            let response = try client.exchange(
                .register(request),
                deadline: .after(milliseconds: registerTimeoutMilliseconds),
                interrupt: signals.descriptor
            )
            if case .failure(let error) = response {
                guard fallback == .proxy, FallbackPolicy.isTransient(error) else {
                    status.reportFailure(error.message)
                    return 1
                }
                unserved = (error.message, error.message)
                // A port of another network namespace than the server's is never Envoy's.
                registerLater = error.code != .foreignNamespace
            }
        } catch .interruptedBeforeSending {
            ShimLog.info("stopped before the server took the registration of \(arguments.key)")
            return 0
        } catch .interrupted {
            ShimLog.info("stopped while registering \(arguments.key)")
            deregister(arguments.key, client: client)
            return 0
        } catch {
            let reason = "registering \(arguments.key) → \(arguments.container): \(error.description)"
            guard fallback == .proxy else {
                status.reportFailure(reason)
                // A request that reached the server may still be registered; one that
                // never did registered nothing.
                if error.requestMayHaveArrived { deregister(arguments.key, client: client) }
                return 1
            }
            unserved = (reason, error.description)
            inDoubt = error.requestMayHaveArrived
        }
        if let unserved {
            return serveItself(arguments, listener: held?.listener, because: unserved.reason, cause: unserved.cause, registerLater: registerLater, inDoubt: inDoubt, client: client, grace: grace, status: &status, signals: signals)
        }
        // The connections queued on dockerd's socket are each relayed with a second
        // descriptor, beyond the soft limit dockerd leaves its proxies (1024): raised
        // first, or those past it would be closed, and those still queued reset.
        if held != nil { DescriptorLimit.raise(toward: Int(Int32.max)) }
        let queued = held?.listener.retire() ?? []
        status.reportReady()
        ShimLog.info("serving \(arguments.key) → \(arguments.container) through Envoy")
        // A signal during the relay (dockerd ≥ 28, which the grace never applies to) was taken there.
        let signal = TCPHandover.relay(queued, to: arguments.container, signals: signals) ? nil : signals.wait()
        grace.release(arguments, after: signal, client: client, signals: signals)
        return 0
    }

    /// docker-proxy's behaviour while Envoy cannot take the port: the container stays
    /// reachable, and the port moves to Envoy as soon as it can.
    private static func serveItself(
        _ arguments: ShimArguments,
        listener held: PortListener?,
        because reason: String,
        cause: String,
        registerLater: Bool,
        inDoubt: Bool,
        client: ServerClient,
        grace: DockerdRestartGrace,
        status: inout StatusPipe,
        signals: TerminationSignals
    ) -> Int32 {
        let listener: PortListener
        if let held {
            listener = held
        } else {
            do throws(ShimFailure) {
                listener = try PortListener.bind(arguments.host)
            } catch {
                status.reportFailure(error.description)
                return 1
            }
        }
        status.reportReady()
        let later = registerLater ? "handing it to Envoy as soon as it can" : "asking the server again every minute"
        ShimLog.warning("serving \(arguments.key) → \(arguments.container) itself, as docker-proxy would (\(reason)); \(later) (EDSHIM_FALLBACK=fail refuses instead)")
        let proxy = FallbackProxy(key: arguments.key, container: arguments.container, client: client, signals: signals)
        let ending = proxy.run(serving: listener, registering: registerLater, inDoubt: inDoubt, alreadyLogged: cause)
        guard ending.mayBeRegistered else { return 0 }
        if ending.handedOver {
            grace.release(arguments, after: ending.signal, client: client, signals: signals)
        } else {
            deregister(arguments.key, client: client)
        }
        return 0
    }

    static func deregister(_ key: RegistrationKey, client: ServerClient, deadline: Deadline = .after(milliseconds: deregisterTimeoutMilliseconds)) {
        do {
            let response = try client.exchange(.deregister(key), deadline: deadline)
            if case .failure(let error) = response, error.code != .notRegistered {
                // A newer shim's port, left in place: as it should be.
                if error.code == .notOwner {
                    ShimLog.info("deregistering \(key): \(error.message)")
                } else {
                    ShimLog.warning("deregistering \(key): \(error.message)")
                }
            }
        } catch {
            ShimLog.warning("deregistering \(key): \(error.description)")
        }
    }
}
