#if canImport(Glibc)
import Glibc
#endif

/// Whether Envoy could listen on a host address at all. Envoy binds a listener's
/// address only once it has taken the update in, and a bind that fails rejects the
/// whole update — every other port's change in it too. So an address the host does not
/// have (`192.0.2.1`), or one Envoy's v6-only sockets cannot take (`::ffff:127.0.0.1`),
/// is refused before it is published, in docker-proxy's words.
public enum HostAddressCheck {
    /// Why a TCP socket cannot bind `host`'s address here, as Envoy binds (v6-only for
    /// IPv6; port 0, so the port's own state does not count); nil when it can.
    public static func refusal(_ host: SocketEndpoint) -> String? {
        guard let code = bindFailure(SocketEndpoint(ip: host.ip, port: 0), reusing: false) else { return nil }
        // Only what says the address itself cannot be listened on: not a host out of
        // ephemeral ports (EADDRINUSE for port 0) or of memory, which Envoy may not be.
        guard code == EADDRNOTAVAIL || code == EINVAL else { return nil }
        guard code == EADDRNOTAVAIL || host.ip.mappedIPv4 != nil else {
            return BindRefusal.message("tcp", host, code, advice: "Envoy could not listen there either (an IPv6 link-local address needs its interface); check -host-ip")
        }
        return BindRefusal.message("tcp", host, code)
    }

    /// Why Envoy could not bind `host`'s port though no socket listens on it (the
    /// caller knows none does): a connection of this host holds it, such as an
    /// outgoing connection's local port in the ephemeral range that Docker's random
    /// host ports come from too. Envoy would fail that bind and reject the whole update.
    /// Bound as Envoy binds a listener (SO_REUSEADDR, SO_REUSEPORT, v6-only for IPv6)
    /// and closed without listening; nil when the bind succeeds, or fails for a reason
    /// that says nothing of the port's use (no permission for a port below 1024 to a
    /// server not run as root: Envoy may have it).
    public static func portRefusal(_ host: SocketEndpoint) -> String? {
        guard bindFailure(host, reusing: true) == EADDRINUSE else { return nil }
        return BindRefusal.message("tcp", host, EADDRINUSE, advice: BindRefusal.heldByAConnection(host))
    }

    /// The errno of binding a TCP socket to `endpoint` as Envoy binds a listener
    /// (v6-only for IPv6; with `reusing`, SO_REUSEADDR and SO_REUSEPORT too), closed at
    /// once without listening; nil when it binds, or no socket could be made.
    private static func bindFailure(_ endpoint: SocketEndpoint, reusing: Bool) -> Int32? {
        let fd = socket(endpoint.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var one: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        if reusing {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, size)
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, size)
        }
        if endpoint.ip.isIPv6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, size) }
        return endpoint.withSocketAddress({ bind(fd, $0, $1) }) == 0 ? nil : errno
    }
}
