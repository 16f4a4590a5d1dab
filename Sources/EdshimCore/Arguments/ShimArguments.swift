/// The docker-proxy command line dockerd starts for each published port:
/// `-proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2
/// -container-port 80 [-use-listen-fd]`.
public struct ShimArguments: Equatable, Sendable {
    /// `-proto`: tcp (default), udp or sctp.
    public var proto: TransportProtocol
    /// `-host-ip` and `-host-port`: where the port is published on the host.
    public var host: SocketEndpoint
    /// `-container-ip` and `-container-port`: where the container serves.
    public var container: SocketEndpoint
    /// `-use-listen-fd`: dockerd ≥ 28 passed the bound socket on fd 4.
    public var useListenFD: Bool

    /// Creates arguments directly (tests, resync).
    public init(proto: TransportProtocol, host: SocketEndpoint, container: SocketEndpoint, useListenFD: Bool = false) {
        self.proto = proto
        self.host = host
        self.container = container
        self.useListenFD = useListenFD
    }

    /// The registry key these arguments publish.
    public var key: RegistrationKey {
        RegistrationKey(proto: proto, host: host)
    }

    /// The command line back in docker-proxy form, as dockerd writes it.
    public var commandLine: [String] {
        var line = [
            "-proto", proto.rawValue,
            "-host-ip", host.ip.description, "-host-port", String(host.port),
            "-container-ip", container.ip.description, "-container-port", String(container.port),
        ]
        if useListenFD { line.append("-use-listen-fd") }
        return line
    }
}
