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
        let probe = SocketEndpoint(ip: host.ip, port: 0)
        let fd = socket(probe.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var one: Int32 = 1
        if probe.ip.isIPv6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
        guard probe.withSocketAddress({ bind(fd, $0, $1) }) != 0 else { return nil }
        let code = errno
        // Only what says the address itself cannot be listened on: not a host out of
        // ephemeral ports (EADDRINUSE for port 0) or of memory, which Envoy may not be.
        guard code == EADDRNOTAVAIL || code == EINVAL else { return nil }
        guard code == EADDRNOTAVAIL || host.ip.mappedIPv4 != nil else {
            return BindRefusal.message("tcp", host, code, advice: "Envoy could not listen there either (an IPv6 link-local address needs its interface); check -host-ip")
        }
        return BindRefusal.message("tcp", host, code)
    }
}
