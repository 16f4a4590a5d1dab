import EdshimCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One HTTP/1.1 keep-alive connection, kept open across requests: the probe for
/// "Envoy never drains a listener that did not change" (a draining listener tells
/// its clients `connection: close`, then closes).
final class KeepAliveClient {
    private let fd: Int32
    private(set) var requests = 0
    /// The status code of the last response.
    private(set) var lastStatus = 0

    init(_ endpoint: SocketEndpoint) throws {
        fd = try Sockets.connect(endpoint)
    }

    deinit { close(fd) }

    /// Sends one request on the same connection; returns its headers, throws when the
    /// connection was closed or told to close.
    func request() throws -> [String: String] {
        lastStatus = 0
        try Sockets.sendAll(fd, Array("GET /keep-alive HTTP/1.1\r\nHost: edshim\r\n\r\n".utf8))
        var head: [UInt8] = []
        while !head.ends(with: Array("\r\n\r\n".utf8)) { head += try Sockets.receive(fd, count: 1) }
        var headers: [String: String] = [:]
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        lastStatus = lines.first?.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        _ = try Sockets.receive(fd, count: Int(headers["content-length"] ?? "0") ?? 0)
        requests += 1
        if headers["connection"]?.lowercased() == "close" {
            throw TestFailure("Envoy told the keep-alive client to close after \(requests) requests: the listener was drained")
        }
        return headers
    }
}

extension Array where Element: Equatable {
    func ends(with suffix: [Element]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}
