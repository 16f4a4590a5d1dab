import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// The shim serving a port itself, as docker-proxy would, because the server or Envoy
/// is not there: it relays connections to the container, keeps trying to register (the
/// listener's inode tells the server which socket is not Envoy's), and once Envoy
/// listens beside it, retires its socket and finishes the connections it holds.
struct FallbackProxy {
    let key: RegistrationKey
    let container: SocketEndpoint
    let client: ServerClient
    let signals: TerminationSignals

    /// How long accepting pauses when a connection cannot be accepted (no descriptor
    /// or no memory left for it).
    static let acceptPauseMilliseconds: Int64 = 100

    /// How serving ended.
    struct Ending {
        /// The port may be registered (it was, or a registration was in flight): the
        /// caller deregisters it, or keeps it for the next dockerd.
        let mayBeRegistered: Bool
        /// Envoy serves the port: the shim had handed it over.
        let handedOver: Bool
        /// The signal that ended it.
        let signal: TerminationSignals.Received
    }

    /// Serves until a termination signal, trying to hand the port to Envoy meanwhile;
    /// `registering` false: only every minute (the server said it cannot serve the
    /// port: another network namespace's, unless the server ran in the wrong one).
    /// `inDoubt`: a registration reached the server and went unanswered, so the port
    /// may be registered. `alreadyLogged`: the reason the shim gave for serving the
    /// port itself, which a retry failing the same way does not log again.
    func run(serving listener: PortListener, registering: Bool = true, inDoubt: Bool = false, alreadyLogged: String = "") -> Ending {
        let relay = TCPRelay(target: container)
        defer { relay.closeAll() }
        // One descriptor per relayed connection and side: as many as dockerd allows.
        DescriptorLimit.raise(toward: Int(Int32.max))
        var serving: PortListener? = listener
        var registered = false
        // A request the server may have taken and not answered: it may be registered.
        var inDoubt = inDoubt
        var pending: PendingExchange?
        var pendingDeadline = Deadline.after(milliseconds: 0)
        var acceptPausedUntil: Deadline?
        var exhaustion = LogThrottle()
        var pollFailures = LogThrottle()
        var retry = RegistrationRetry(key: key, alreadyLogged: alreadyLogged)
        if !registering { retry.slowDown() }
        while true {
            if serving != nil, pending == nil, retry.isDue {
                let request = RegisterRequest(key: key, container: container, heldSocketInode: serving?.inode)
                do {
                    pending = try client.begin(.register(request))
                    pendingDeadline = .after(milliseconds: TCPShim.registerTimeoutMilliseconds)
                } catch {
                    retry.failed(error.description)
                }
            }
            if acceptPausedUntil?.hasPassed == true { acceptPausedUntil = nil }
            let accepting = serving != nil && acceptPausedUntil == nil
            var fds = [pollfd(fd: signals.descriptor, events: Int16(POLLIN), revents: 0)]
            if let serving { fds.append(pollfd(fd: accepting ? serving.descriptor : -1, events: Int16(POLLIN), revents: 0)) }
            if let pending { fds.append(pollfd(fd: pending.descriptor, events: Int16(POLLIN), revents: 0)) }
            let relayIndex = fds.count
            fds.append(pollfd(fd: relay.descriptor, events: Int16(POLLIN), revents: 0))
            var timeout: Int32 = serving == nil ? -1 : (pending == nil ? retry.remaining : min(1000, pendingDeadline.remaining))
            if let acceptPausedUntil { timeout = timeout < 0 ? acceptPausedUntil.remaining : min(timeout, acceptPausedUntil.remaining) }
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0 {
                let (error, count) = (errno, fds.count)
                guard TerminationSignals.afterFailedPoll(&fds[0], error: error, doing: "serving \(key) itself (\(count) descriptors)", log: &pollFailures) else { continue }
            }
            if fds[0].revents != 0, let signal = signals.takeSignal() {
                // A registration in flight may still complete on the server's side.
                let inFlight = pending != nil
                pending?.close()
                if let serving { close(serving.descriptor) }
                return Ending(mayBeRegistered: registered || inFlight || inDoubt, handedOver: serving == nil, signal: signal)
            }
            var index = 1
            if let listening = serving {
                if fds[index].revents != 0 {
                    let (clients, stalled) = listening.acceptPending()
                    for client in clients { relay.add(client: client) }
                    if let stalled {
                        // Left readable, the socket would wake this loop at once, again
                        // and again: pause accepting until connections close.
                        acceptPausedUntil = .after(milliseconds: Self.acceptPauseMilliseconds)
                        let message = stalled == EMFILE || stalled == ENFILE
                            ? "no file descriptor left for a new connection to \(key) (\(relay.count) relayed); accepting again as connections close"
                            : "accepting a connection to \(key) failed (\(ErrorText.describe(stalled)), \(relay.count) relayed); trying again every \(Self.acceptPauseMilliseconds) ms"
                        if let line = exhaustion.line(message, now: Deadline.now()) { ShimLog.warning(line) }
                    }
                }
                index += 1
            }
            if var exchange = pending {
                if fds[index].revents != 0 {
                    do {
                        if let response = try exchange.receive() {
                            exchange.close()
                            pending = nil
                            switch response {
                            case .ok, .registrations:
                                if let listening = serving {
                                    for client in listening.retire() { relay.add(client: client) }
                                }
                                serving = nil
                                registered = true
                                ShimLog.info("handed \(key) over to Envoy; finishing \(relay.count) connection(s) it was relaying")
                            case .failure(let error):
                                retry.refused(error)
                            }
                        } else {
                            pending = exchange
                        }
                    } catch {
                        exchange.close()
                        pending = nil
                        inDoubt = true
                        retry.failed(error.description)
                    }
                }
                if let stuck = pending, pendingDeadline.hasPassed || stuck.isUnreadTooLong {
                    // Answered or not, a request this old (or left unread by a server
                    // stopped or hung) is given up, and tried again.
                    stuck.close()
                    pending = nil
                    inDoubt = true
                    retry.failed((pendingDeadline.hasPassed ? ServerClient.Failure.timedOut : .notRead).description)
                }
            }
            if fds[relayIndex].revents != 0 { relay.process() }
        }
    }
}

/// When the fallback tries to register again: after 250 ms, doubling up to 5 s, at
/// once 5 s after a refusal that will not go away by itself, a minute after the server
/// said the port is not its to serve (`slowDown`). Each new reason is logged once.
struct RegistrationRetry {
    static let firstDelayMilliseconds: Int64 = 250
    static let maximumDelayMilliseconds: Int64 = 5000
    static let slowDelayMilliseconds: Int64 = 60_000

    let key: RegistrationKey
    private var delay = Self.firstDelayMilliseconds
    private var nextAttempt = Deadline.after(milliseconds: Self.firstDelayMilliseconds)
    private var lastReason = ""

    init(key: RegistrationKey, alreadyLogged: String = "") {
        self.key = key
        lastReason = alreadyLogged
    }

    var isDue: Bool { nextAttempt.hasPassed }
    var remaining: Int32 { nextAttempt.remaining }

    /// The next attempt in a minute: the server said it cannot serve the port.
    mutating func slowDown() {
        nextAttempt = .after(milliseconds: Self.slowDelayMilliseconds)
    }

    /// The server answered `error`: tried again as its code says.
    mutating func refused(_ error: WireError) {
        failed(error.message, transient: FallbackPolicy.isTransient(error))
        if error.code == .foreignNamespace { slowDown() }
    }

    mutating func failed(_ reason: String, transient: Bool = true) {
        if reason != lastReason {
            lastReason = reason
            ShimLog.warning("still serving \(key) itself; will retry: \(reason)")
        }
        delay = transient ? min(delay * 2, Self.maximumDelayMilliseconds) : Self.maximumDelayMilliseconds
        nextAttempt = .after(milliseconds: delay)
    }
}
