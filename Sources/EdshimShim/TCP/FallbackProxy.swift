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

    static let firstRetryMilliseconds: Int64 = 250
    static let maximumRetryMilliseconds: Int64 = 5000

    /// Serves until a termination signal; returns whether the port ended up registered
    /// (the caller then deregisters).
    func run(serving listener: PortListener) -> Bool {
        let relay = TCPRelay(target: container)
        defer { relay.closeAll() }
        var serving: PortListener? = listener
        var registered = false
        var pending: PendingExchange?
        var delay = Self.firstRetryMilliseconds
        var nextAttempt = Deadline.after(milliseconds: delay)
        var lastFailure = ""
        while true {
            if serving != nil, pending == nil, nextAttempt.hasPassed {
                let request = RegisterRequest(key: key, container: container, heldSocketInode: serving?.inode)
                do {
                    pending = try client.begin(.register(request))
                } catch {
                    note(error.description, &lastFailure)
                    delay = min(delay * 2, Self.maximumRetryMilliseconds)
                    nextAttempt = .after(milliseconds: delay)
                }
            }
            var fds = [pollfd(fd: signals.descriptor, events: Int16(POLLIN), revents: 0)]
            if let serving { fds.append(pollfd(fd: serving.descriptor, events: Int16(POLLIN), revents: 0)) }
            if let pending { fds.append(pollfd(fd: pending.descriptor, events: Int16(POLLIN), revents: 0)) }
            let relayStart = fds.count
            relay.appendPollDescriptors(to: &fds)
            let timeout: Int32 = serving == nil ? -1 : (pending == nil ? nextAttempt.remaining : 1000)
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0, errno != EINTR { return registered }
            if fds[0].revents != 0, signals.takePending() {
                pending?.close()
                if let serving { close(serving.descriptor) }
                return registered
            }
            var index = 1
            if let listening = serving {
                if fds[index].revents != 0 { for client in listening.acceptPending() { relay.add(client: client) } }
                index += 1
            }
            if var exchange = pending, fds[index].revents != 0 {
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
                            note(error.message, &lastFailure)
                            delay = FallbackPolicy.isTransient(error) ? min(delay * 2, Self.maximumRetryMilliseconds) : Self.maximumRetryMilliseconds
                            nextAttempt = .after(milliseconds: delay)
                        }
                    } else {
                        pending = exchange
                    }
                } catch {
                    exchange.close()
                    pending = nil
                    note(error.description, &lastFailure)
                    delay = min(delay * 2, Self.maximumRetryMilliseconds)
                    nextAttempt = .after(milliseconds: delay)
                }
            }
            relay.process(fds[relayStart...])
        }
    }

    /// Logs a reason the first time it differs from the last one.
    private func note(_ reason: String, _ last: inout String) {
        guard reason != last else { return }
        last = reason
        ShimLog.info("still serving \(key) itself; will retry: \(reason)")
    }
}
