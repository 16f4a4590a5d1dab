import AsyncHTTPClient
import NIOCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A small client of the Docker Engine API: only the calls edshim needs, none of which
/// waits for a container that is still starting (dockerd starts the proxy in the
/// middle of starting the container, and waits for it).
public struct DockerEngineClient: Sendable {
    /// A failed call, with what to check.
    public struct Failure: Error, CustomStringConvertible {
        /// One line.
        public var description: String
    }

    /// Where the API is.
    public let host: DockerHost
    private let http: HTTPClient
    private let timeout: TimeAmount
    /// When every call must have its whole answer (`until`); nil: each call alone.
    private var deadline: ContinuousClock.Instant?

    /// A client of `host`; each call gives up after `timeout`.
    public init(host: DockerHost, timeout: TimeAmount = .milliseconds(800), http: HTTPClient = .shared) {
        self.host = host
        self.http = http
        self.timeout = timeout
    }

    /// The same client, whose calls together end by `deadline`: each gives up at it,
    /// or at its own timeout if sooner, and one that would start later fails at once.
    public func until(_ deadline: ContinuousClock.Instant) -> DockerEngineClient {
        var bounded = self
        bounded.deadline = deadline
        return bounded
    }

    /// The API version to speak: the one dockerd announces on `/_ping` (dockerd 20.10
    /// says 1.41; newer releases refuse versions below their minimum, so edshim never
    /// pins an older one).
    public func negotiateVersion() async throws(Failure) -> String {
        let response = try await get("/_ping")
        guard response.status == 200 else {
            throw Failure(description: "GET /_ping on \(host) answered HTTP \(response.status): \(String(buffer: response.body).prefix(200))")
        }
        guard let version = response.apiVersion, !version.isEmpty else {
            throw Failure(description: "\(host) answered /_ping without an API-Version header: is it a Docker Engine?")
        }
        return version
    }

    func networks(version: String) async throws(Failure) -> [DockerEngine.NetworkSummary] {
        try await decode([DockerEngine.NetworkSummary].self, from: "/v\(version)/networks")
    }

    /// The network `id`; nil when it is gone (removed since it was listed: 404).
    func network(_ id: String, version: String) async throws(Failure) -> DockerEngine.NetworkDetail? {
        try await decode(DockerEngine.NetworkDetail.self, from: "/v\(version)/networks/\(id)", absentOn404: true)
    }

    /// Containers by id, in any state (`created` included: labels are known at creation).
    func containers(id: String, version: String) async throws(Failure) -> [DockerEngine.ContainerSummary] {
        let filter = #"{"id":["\#(id)"]}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        return try await decode([DockerEngine.ContainerSummary].self, from: "/v\(version)/containers/json?all=1&filters=\(filter)")
    }

    /// The running containers (`paused` and `restarting` ones included), with their ports.
    func runningContainers(version: String) async throws(Failure) -> [DockerEngine.ContainerSummary] {
        try await decode([DockerEngine.ContainerSummary].self, from: "/v\(version)/containers/json")
    }

    /// The container `id`'s details; nil when it is gone (404).
    func container(_ id: String, version: String) async throws(Failure) -> DockerEngine.ContainerDetail? {
        try await decode(DockerEngine.ContainerDetail.self, from: "/v\(version)/containers/\(id)/json", absentOn404: true)
    }

    private struct Response {
        var status: Int
        var apiVersion: String?
        var body: ByteBuffer
    }

    private func get(_ path: String) async throws(Failure) -> Response {
        // A missing socket file fails at once (the HTTP client would wait for its timeout).
        if case .unixSocket(let socket) = host.transport, access(socket, R_OK | W_OK) != 0 {
            // A directory on the way this user may not enter hides the socket as well.
            guard errno == EACCES else { throw Failure(description: "no Docker socket at \(socket)") }
            var info = stat()
            let group = stat(socket, &info) == 0 ? "gid \(info.st_gid), docker as a rule" : "docker as a rule"
            throw Failure(description: "no permission to use \(socket): run as root, or as a member of its group (\(group))")
        }
        var request = HTTPClientRequest(url: host.url(path))
        // HTTP/1.1 needs a Host, which the client leaves out for a Unix socket; dockerd
        // answers 400 without it. The Docker CLI sends this one. Over TCP the client
        // sends the real host, as the CLI does (a proxy in front may route by it).
        if case .unixSocket = host.transport {
            request.headers.replaceOrAdd(name: "Host", value: "api.moby.localhost")
        }
        var callTimeout = self.timeout
        if let deadline {
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                throw Failure(description: "GET \(path) on \(host): no time left (Docker answered the calls before it too slowly)")
            }
            callTimeout = min(callTimeout, .nanoseconds(Int64(left / .nanoseconds(1))))
        }
        // Constants for the child task (`request` is a var).
        let (http, timeout, prepared) = (self.http, callTimeout, request)
        do {
            // The timeout covers the whole answer. The client's own ends with the
            // response head: a dockerd that stalls in the middle of a body would hold
            // the registration waiting for it for the client's read timeout (90 s).
            return try await withThrowingTaskGroup(of: Response?.self) { group in
                group.addTask {
                    let response = try await http.execute(prepared, timeout: timeout)
                    let body = try await response.body.collect(upTo: 16 * 1024 * 1024)
                    return Response(status: Int(response.status.code), apiVersion: response.headers.first(name: "API-Version"), body: body)
                }
                group.addTask {
                    try await Task.sleep(for: .nanoseconds(timeout.nanoseconds))
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let response = first else {
                    throw AnswerTimedOut(timeout: timeout)
                }
                return response
            }
        } catch let error as IOError where error.errnoCode == ECONNREFUSED {
            throw Failure(description: "GET \(path) on \(host): connection refused (is dockerd listening there?)")
        } catch {
            throw Failure(description: "GET \(path) on \(host): \(error)")
        }
    }

    /// The whole answer did not come within the timeout.
    private struct AnswerTimedOut: Error, CustomStringConvertible {
        var timeout: TimeAmount
        var description: String { "no complete answer within \(timeout.nanoseconds / 1_000_000) ms" }
    }

    private func decode<Value: Decodable>(_ type: Value.Type, from path: String) async throws(Failure) -> Value {
        guard let value = try await decode(type, from: path, absentOn404: false) else {
            throw Failure(description: "GET \(path) on \(host): nothing there")
        }
        return value
    }

    private func decode<Value: Decodable>(_ type: Value.Type, from path: String, absentOn404: Bool) async throws(Failure) -> Value? {
        let response = try await get(path)
        if absentOn404, response.status == 404 { return nil }
        guard response.status == 200 else {
            throw Failure(description: "GET \(path) on \(host) answered HTTP \(response.status): \(String(buffer: response.body).prefix(200))")
        }
        do {
            return try JSONDecoder().decode(Value.self, from: Data(response.body.readableBytesView))
        } catch {
            throw Failure(description: "GET \(path) on \(host): unreadable JSON (\(error))")
        }
    }
}
