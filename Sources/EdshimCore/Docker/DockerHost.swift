import AsyncHTTPClient
import Foundation

/// Where the Docker Engine API is: `unix:///var/run/docker.sock` or `tcp://host:2375`.
public struct DockerHost: Equatable, Sendable, CustomStringConvertible {
    /// How to reach the API.
    public enum Transport: Equatable, Sendable {
        /// A Unix socket path.
        case unixSocket(String)
        /// Plain HTTP to host and port (TLS is not supported).
        case tcp(host: String, port: Int)
    }

    /// The transport.
    public var transport: Transport
    /// The text it was parsed from.
    public var description: String

    /// Parses `unix:///path` or `tcp://host:port` (as in DOCKER_HOST).
    public init(parsing text: String) throws(ArgumentError) {
        description = text
        if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard path.hasPrefix("/") else {
                throw ArgumentError("docker host \(text) must name an absolute socket path, like unix:///var/run/docker.sock")
            }
            transport = .unixSocket(path)
        } else if text.hasPrefix("tcp://") {
            let rest = text.dropFirst("tcp://".count).split(separator: "/").first.map(String.init) ?? ""
            guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port),
                  !rest[..<colon].isEmpty else {
                throw ArgumentError("docker host \(text) must be tcp://HOST:PORT")
            }
            transport = .tcp(host: String(rest[..<colon]), port: port)
        } else {
            throw ArgumentError("docker host \(text) must start with unix:// or tcp://")
        }
    }

    /// The URL of an API path (`/_ping`, `/v1.41/networks`) for AsyncHTTPClient.
    public func url(_ path: String) -> String {
        switch transport {
        case .unixSocket(let socket):
            // The client's own form: the socket path, percent-encoded, as the host.
            return URL(httpURLWithSocketPath: socket, uri: path)?.absoluteString ?? "http+unix://invalid\(path)"
        case .tcp(let host, let port):
            return "http://\(host.contains(":") ? "[\(host)]" : host):\(port)\(path)"
        }
    }
}
