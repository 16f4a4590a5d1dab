import EdshimCore
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for the Docker Engine API on a Unix socket, answering the calls edshim
/// makes (`/_ping`, `/v1.41/networks`, `/v1.41/networks/{id}`, `/v1.41/containers/json`,
/// `/v1.41/containers/{id}/json`) from tables the test controls: container address →
/// id, name, labels; and the running containers with their published ports.
final class FakeDockerEngine: @unchecked Sendable {
    struct Container: Sendable {
        var id: String
        var name: String
        var labels: [String: String]
    }

    /// A running container as `GET /containers/json` lists it (no filter: what
    /// `edshim status` asks), with its published ports and main process.
    struct PublishingContainer: Sendable {
        var id: String
        var name: String
        /// Its main process (`State.Pid` of its inspect).
        var pid: Int32
        /// Each published port: host address, host port, container port, tcp or udp.
        var ports: [(ip: String, port: UInt16, containerPort: UInt16, proto: String)]
    }

    let socketPath: String
    private let containers = Mutex<[IPAddress: Container]>([:])
    /// The running containers listed without a filter.
    let publishing = Mutex<[PublishingContainer]>([])
    /// Set once listening: the listener hands connections to this engine.
    private let server = Mutex<UnixStreamServer?>(nil)
    /// How long each answer takes (a slow or loaded dockerd).
    let delay = Mutex(Duration.zero)
    /// Each answer stops halfway through its body, and the rest never comes (a
    /// dockerd that hangs mid-answer).
    let stallsMidBody = Mutex(false)
    /// How many requests it answered, or began to.
    let requests = Mutex(0)
    /// The network list starts with a network removed since (its inspect answers
    /// 404), whose subnet holds every container's address.
    let listsAGoneNetwork = Mutex(false)

    init(socketPath: String) throws {
        self.socketPath = socketPath
        let listening = try UnixStreamServer(path: socketPath, name: "fake Docker") { [weak self] fd in self?.serve(fd) }
        server.withLock { $0 = listening }
    }

    /// Makes the container at `ip` known, with `labels`; `id` (64 hex digits) makes it
    /// another container than the one `ip` had before.
    func set(_ ip: IPAddress, labels: [String: String], id: String? = nil) {
        containers.withLock { $0[ip] = Container(id: id ?? Self.id(of: ip), name: "c-\(ip)", labels: labels) }
    }

    /// The id the container at `ip` gets: 64 hex digits that differ from the first
    /// ones on, as Docker's random ids do (a short id is the first 12).
    static func id(of ip: IPAddress) -> String {
        let hash = ip.bytes.reduce(UInt64(0xcbf2_9ce4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
        return String(repeating: String(format: "%016llx", hash), count: 4)
    }

    /// Blocks (up to 10 s) until a request beyond the first `count` has begun: on a
    /// thread of its own, so that busy async threads cannot make a test miss the moment.
    func waitForRequest(after count: Int) {
        let deadline = ContinuousClock.now + .seconds(10)
        while requests.withLock({ $0 }) == count, ContinuousClock.now < deadline { usleep(1000) }
    }

    /// Stops answering, as a dockerd that exits: connections open now are shut down.
    func stop() {
        server.withLock { $0 }?.stop()
    }

    private var stopped: Bool { server.withLock { $0 }?.isStopped ?? true }

    private func serve(_ fd: Int32) {
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            while let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: pending[..<end.lowerBound], as: UTF8.self)
                pending.removeSubrange(..<end.upperBound)
                let target = head.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
                requests.withLock { $0 += 1 }
                let pause = delay.withLock { $0 }
                if pause > .zero { usleep(UInt32(pause / .microseconds(1))) }
                let (status, body, extraHeaders) = respond(to: target)
                let response = "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nAPI-Version: 1.41\r\n\(extraHeaders)Content-Length: \(body.utf8.count)\r\n\r\n" + body
                if stallsMidBody.withLock({ $0 }) {
                    _ = try? Sockets.sendAll(fd, Array(response.utf8.dropLast(body.utf8.count / 2 + 1)))
                    while !stopped { usleep(50_000) }
                    return
                }
                guard (try? Sockets.sendAll(fd, Array(response.utf8))) != nil else { return }
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            pending += buffer[0..<n]
        }
    }

    /// The status line's code and reason, the body, and extra header lines.
    private func respond(to target: String) -> (String, String, String) {
        let path = target.split(separator: "?").first.map(String.init) ?? target
        let table = containers.withLock { $0 }
        func json(_ value: Any) -> String {
            String(decoding: (try? JSONSerialization.data(withJSONObject: value)) ?? Data("null".utf8), as: UTF8.self)
        }
        switch path {
        case "/_ping":
            return ("200 OK", "OK", "")
        case "/v1.41/networks":
            let gone: [[String: Any]] = listsAGoneNetwork.withLock { $0 } ? [["Id": "gonenet", "Name": "gone", "IPAM": ["Config": [["Subnet": "127.0.0.0/8"]]]]] : []
            return ("200 OK", json(gone + [["Id": "fakenet", "Name": "bridge", "IPAM": ["Config": [["Subnet": "127.0.0.0/8"], ["Subnet": "::1/128"]]]]]), "")
        case "/v1.41/networks/fakenet":
            // A container set at an IPv4 and an IPv6 address (one id) has both, as
            // on a dockerd run with --ipv6.
            var endpoints: [String: [String: String]] = [:]
            for (ip, container) in table {
                var endpoint = endpoints[container.id] ?? ["Name": container.name, "IPv4Address": "", "IPv6Address": ""]
                endpoint[ip.isIPv6 ? "IPv6Address" : "IPv4Address"] = ip.isIPv6 ? "\(ip)/128" : "\(ip)/8"
                endpoints[container.id] = endpoint
            }
            return ("200 OK", json(["Id": "fakenet", "Containers": endpoints]), "")
        case "/v1.41/containers/json" where !target.contains("filters="):
            let listed = publishing.withLock { $0 }.map { container -> [String: Any] in
                let ports = container.ports.map { ["IP": $0.ip, "PublicPort": Int($0.port), "PrivatePort": Int($0.containerPort), "Type": $0.proto] as [String: Any] }
                return ["Id": container.id, "Names": ["/" + container.name], "State": "running", "Ports": ports]
            }
            return ("200 OK", json(listed), "")
        case let inspect where inspect != "/v1.41/containers/json" && inspect.hasPrefix("/v1.41/containers/") && inspect.hasSuffix("/json"):
            let id = inspect.dropFirst("/v1.41/containers/".count).dropLast("/json".count)
            guard let container = publishing.withLock({ $0 }).first(where: { $0.id == id }) else {
                return ("404 Not Found", json(["message": "No such container: \(id)"]), "")
            }
            return ("200 OK", json(["Id": container.id, "State": ["Pid": Int(container.pid)]]), "")
        case "/v1.41/containers/json":
            let query = target.removingPercentEncoding ?? target
            let matching = Dictionary(table.values.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first }).values.filter { query.contains($0.id) }
            return ("200 OK", json(matching.map { ["Id": $0.id, "Names": ["/" + $0.name], "Labels": $0.labels] }), "")
        default:
            return ("404 Not Found", json(["message": "not found"]), "")
        }
    }
}

/// Runs `body` with a testbed whose server asks a fake Docker engine (its socket
/// named after `name`) about containers; stops both afterwards.
func withFakeDockerTestbed(_ name: String, _ body: (Testbed, FakeDockerEngine) async throws -> Void) async throws {
    let docker = try FakeDockerEngine(socketPath: "/tmp/edshim-fake-docker-\(getpid())-\(name).sock")
    defer { docker.stop() }
    var options = Testbed.Options()
    options.serverArguments = ["--docker-host", "unix://\(docker.socketPath)"]
    try await withTestbed(options) { bed in try await body(bed, docker) }
}
