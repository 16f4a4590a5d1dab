import AsyncHTTPClient

/// A port dockerd publishes for a running container, as its Engine API lists it
/// (`docker ps`): what a proxy should be serving.
public struct PublishedPort: Hashable, Sendable {
    /// The proto, host address and port, as the proxy's registration would have them.
    public var key: RegistrationKey
    /// The container's name (`docker ps`'s NAMES), or its short id.
    public var container: String
    /// The container's full id.
    public var containerID: String
    /// The container's port.
    public var containerPort: UInt16

    public init(key: RegistrationKey, container: String, containerID: String = "", containerPort: UInt16) {
        self.key = key
        self.container = container
        self.containerID = containerID
        self.containerPort = containerPort
    }
}

public enum PublishedPorts {
    /// What `edshim status` learns from Docker: every port it publishes, and those of
    /// them no proxy serves.
    public struct Look: Sendable {
        public var published: [PublishedPort]
        public var unproxied: [PublishedPort]
    }

    /// The TCP and UDP ports that dockerd at `host` publishes for its running (or
    /// paused) containers, and those no proxy serves (`unproxied`), less those of a
    /// container whose main process has exited (`isRunning` says no): dockerd lists
    /// such a container as running while it stops its proxies one after another,
    /// seconds for a wide port range (`docker stop`, `rm -f`, `restart`, a crash).
    /// A restarting container's are left out too: dockerd stops their proxies until
    /// it runs again.
    public static func look(at host: DockerHost, listed: Set<RegistrationKey>, listeningTCP: Set<SocketEndpoint>, boundUDP: Set<SocketEndpoint>?, isRunning: (Int32) -> Bool, timeout: Duration = .seconds(2)) async throws(DockerEngineClient.Failure) -> Look {
        // A client of its own that does not retry a refused connection until the
        // deadline: a command run by hand says at once that nothing listens there.
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        defer { Task { try? await http.shutdown() } }
        let client = DockerEngineClient(host: host, timeout: .milliseconds(Int64(timeout / .milliseconds(1))), http: http).until(.now + timeout)
        let version = try await client.negotiateVersion()
        let published = of(try await client.runningContainers(version: version))
        let dark = unproxied(published, listed: listed, listeningTCP: listeningTCP, boundUDP: boundUDP)
        var stopping: Set<String> = []
        for id in Set(dark.map(\.containerID)) {
            let pid = try await client.container(id, version: version)?.State?.Pid ?? 0
            if pid <= 0 || !isRunning(Int32(clamping: pid)) { stopping.insert(id) }
        }
        return Look(published: published, unproxied: dark.filter { !stopping.contains($0.containerID) })
    }

    /// The published ports of `containers` (an Engine API listing), in key order.
    static func of(_ containers: [DockerEngine.ContainerSummary]) -> [PublishedPort] {
        let running = containers.filter { $0.State == nil || $0.State == "running" || $0.State == "paused" }
        return running.flatMap { container in
            let name = container.Names?.first.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 } ?? String(container.Id.prefix(12))
            return (container.Ports ?? []).compactMap { port -> PublishedPort? in
                guard let proto = port.Type.flatMap(TransportProtocol.init(rawValue:)), proto != .sctp,
                      let published = port.PublicPort.flatMap(UInt16.init(exactly:)), published > 0,
                      let ip = IPAddress(port.IP ?? "0.0.0.0"),
                      let containerPort = port.PrivatePort.flatMap(UInt16.init(exactly:))
                else { return nil }
                return PublishedPort(key: RegistrationKey(proto: proto, host: SocketEndpoint(ip: ip, port: published)), container: name, containerID: container.Id, containerPort: containerPort)
            }
        }.sorted { $0.key < $1.key }
    }

    /// Those of `published` that no proxy serves: not among the ports `status` lists
    /// (`listed`: registered, or with a shim running), and no socket listens (TCP) or
    /// is bound (UDP) on their address and port (a docker-proxy from before edshim
    /// was installed serves its port all the same). `boundUDP` nil: the host's UDP
    /// sockets cannot be read, and no UDP port is counted.
    public static func unproxied(_ published: [PublishedPort], listed: Set<RegistrationKey>, listeningTCP: Set<SocketEndpoint>, boundUDP: Set<SocketEndpoint>?) -> [PublishedPort] {
        published.filter { port in
            guard !listed.contains(port.key) else { return false }
            switch port.key.proto {
            case .tcp: return !listeningTCP.contains(port.key.host)
            case .udp: return boundUDP.map { !$0.contains(port.key.host) } ?? false
            case .sctp: return false
            }
        }
    }
}
