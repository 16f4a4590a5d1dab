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

    /// The port of a `tcp://` host given without one, as the Docker CLI completes it
    /// (plain HTTP; TLS, on 2376, is not supported).
    public static let defaultTCPPort = 2375

    /// Parses `unix:///path` or `tcp://HOST[:PORT]` as DOCKER_HOST is written: a
    /// missing port is 2375 and a missing host `localhost`, as for the Docker CLI; an
    /// IPv6 host goes in brackets, `tcp://[::1]:2375`.
    public init(parsing text: String) throws(ArgumentError) {
        description = text
        if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard path.hasPrefix("/") else {
                throw ArgumentError("docker host \(text) must name an absolute socket path, like unix:///var/run/docker.sock")
            }
            transport = .unixSocket(path)
        } else if text.hasPrefix("tcp://") {
            let authority = text.dropFirst("tcp://".count).split(separator: "/", omittingEmptySubsequences: false).first.map(String.init) ?? ""
            guard let (host, port) = Self.hostAndPort(authority) else {
                throw ArgumentError("docker host \(text) must be tcp://HOST[:PORT], with a port from 1 to 65535 and an IPv6 host in brackets, like tcp://127.0.0.1:2375 or tcp://[::1]:2375")
            }
            transport = .tcp(host: host.isEmpty ? "localhost" : host, port: port)
        } else {
            let scheme = text.range(of: "://").map { String(text[..<$0.lowerBound]) }
            let unsupported = scheme.map { " (\($0):// is not supported)" } ?? ""
            throw ArgumentError("docker host \(text) must start with unix:// or tcp://\(unsupported), like unix:///var/run/docker.sock")
        }
    }

    /// The host (brackets removed) and port of `HOST[:PORT]` or `[IPv6][:PORT]`; nil
    /// when malformed. An IPv6 host without brackets is refused, as the Docker CLI
    /// refuses it: in `::1` or `2001:db8::5` no one can tell the port from the address.
    private static func hostAndPort(_ authority: String) -> (String, Int)? {
        func port(_ text: Substring) -> Int? {
            guard !text.isEmpty, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber), let number = Int(text), (1...65535).contains(number) else { return nil }
            return number
        }
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            let host = String(authority[authority.index(after: authority.startIndex)..<close])
            let rest = authority[authority.index(after: close)...]
            guard !host.isEmpty else { return nil }
            if rest.isEmpty { return (host, defaultTCPPort) }
            guard rest.hasPrefix(":"), let number = port(rest.dropFirst()) else { return nil }
            return (host, number)
        }
        guard let colon = authority.lastIndex(of: ":") else {
            return authority.contains("]") ? nil : (authority, defaultTCPPort)
        }
        let host = authority[..<colon]
        guard let number = port(authority[authority.index(after: colon)...]), !authority.contains("]"), !host.contains(":") else { return nil }
        return (String(host), number)
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
