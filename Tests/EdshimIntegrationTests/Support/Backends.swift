import EdshimCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A loopback server standing in for a container: each accepted connection is
/// handled on its own thread. Closed (and its threads released) by `stop()`.
final class LoopbackBackend: @unchecked Sendable {
    let endpoint: SocketEndpoint
    private let listener: Int32
    private let lock = NSLock()
    private var connections: Set<Int32> = []
    private var stopped = false

    /// An empty 200, kept alive.
    static let emptyOK = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    /// A server of a protocol in which the server speaks first (MySQL, SMTP, SSH): it
    /// sends `greeting` as soon as it accepts, then echoes.
    static func greeting(_ greeting: String, on ip: IPAddress = .loopbackIPv4) throws -> LoopbackBackend {
        try LoopbackBackend(ip: ip) { fd in
            guard (try? Sockets.sendAll(fd, Array(greeting.utf8))) != nil else { return }
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0, (try? Sockets.sendAll(fd, Array(buffer[0..<n]))) != nil else { return }
            }
        }
    }

    /// An echo server: every byte comes back.
    static func echo(on ip: IPAddress = .loopbackIPv4) throws -> LoopbackBackend {
        try LoopbackBackend(ip: ip) { fd in
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { return }
                guard (try? Sockets.sendAll(fd, Array(buffer[0..<n]))) != nil else { return }
            }
        }
    }

    /// A container that sends each connection bytes until its peer has stopped taking
    /// them (nothing more fits for 200 ms), then resets it (SO_LINGER 0): a server
    /// killed mid-download while its client stalls.
    static func floodThenReset(on ip: IPAddress = .loopbackIPv4) throws -> LoopbackBackend {
        try LoopbackBackend(ip: ip) { fd in
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 65536)
            var writable = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            while true {
                if chunk.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) > 0 { continue }
                guard errno == EAGAIN, poll(&writable, 1, 200) == 1 else { break }
            }
            var reset = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, socklen_t(MemoryLayout<linger>.size))
        }
    }

    /// An HTTP/1.1 server (keep-alive) answering every request with a body that
    /// says who answered and which forwarding headers arrived.
    static func http(name: String, on ip: IPAddress = .loopbackIPv4, port: UInt16 = 0) throws -> LoopbackBackend {
        try LoopbackBackend(ip: ip, port: port) { fd in
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                while let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) {
                    let head = String(decoding: pending[..<end.lowerBound], as: UTF8.self)
                    pending.removeSubrange(..<end.upperBound)
                    let lines = head.components(separatedBy: "\r\n")
                    var headers: [String: String] = [:]
                    for line in lines.dropFirst() {
                        guard let colon = line.firstIndex(of: ":") else { continue }
                        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                    }
                    let path = lines.first?.split(separator: " ").dropFirst().first.map(String.init) ?? ""
                    if let upgrade = headers["upgrade"] {
                        // Accept the upgrade (a WebSocket's key is the RFC 6455 sample; any
                        // other, as dockerd answers `Upgrade: tcp`), then echo raw bytes.
                        let switching = upgrade.lowercased() == "websocket"
                            ? "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                            : "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: \(upgrade)\r\n\r\n"
                        guard (try? Sockets.sendAll(fd, Array(switching.utf8) + pending)) != nil else { return }
                        while true {
                            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                            guard n > 0, (try? Sockets.sendAll(fd, Array(buffer[0..<n]))) != nil else { return }
                        }
                    }
                    if path.hasPrefix("/slow/"), let seconds = UInt32(path.dropFirst("/slow/".count)) {
                        sleep(seconds)
                    }
                    let body = """
                        backend=\(name)
                        path=\(path)
                        x-forwarded-for=\(headers["x-forwarded-for"] ?? "")
                        x-request-id=\(headers["x-request-id"] ?? "")
                        traceparent=\(headers["traceparent"] ?? "")
                        """ + "\n" + (headers["tracestate"].map { "tracestate=\($0)\n" } ?? "")
                    let response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
                    guard (try? Sockets.sendAll(fd, Array(response.utf8))) != nil else { return }
                    if headers["connection"]?.lowercased() == "close" { return }
                }
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { return }
                pending += buffer[0..<n]
            }
        }
    }

    /// A keep-alive HTTP/1.1 server that always loses the race a keep-alive timeout
    /// loses now and then (Node.js closes an idle connection after 5 s): it answers
    /// the first request on each connection, keeping the connection open, and closes
    /// the connection when the next request arrives on it, unanswered, as if its
    /// timeout had fired a moment before. `answered` counts the requests it answered.
    static func closesReusedConnections(answered: Counter) throws -> LoopbackBackend {
        try LoopbackBackend(ip: .loopbackIPv4) { fd in
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            // The whole first request: its head, and its body by Content-Length.
            while true {
                if let end = received.firstRange(of: Array("\r\n\r\n".utf8)) {
                    let head = String(decoding: received[..<end.lowerBound], as: UTF8.self).lowercased()
                    let length = head.components(separatedBy: "\r\n").first { $0.hasPrefix("content-length:") }
                        .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                    if received.count >= end.upperBound + length { break }
                }
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { return }
                received += buffer[0..<n]
            }
            answered.increment()
            guard (try? Sockets.sendAll(fd, Array("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nanswered".utf8))) != nil else { return }
            // The next request (or the end): the connection closes without an answer.
            _ = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        }
    }

    /// An HTTP/1.1 server that keeps every request it gets (head and body, by
    /// Content-Length) in `requests` and answers each with `answer` (an empty 200): a
    /// stand-in for a collector (OTLP/HTTP).
    static func recorder(_ requests: RecordedRequests, answer: String = emptyOK, on ip: IPAddress = .loopbackIPv4) throws -> LoopbackBackend {
        try LoopbackBackend(ip: ip) { fd in
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                if let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) {
                    let head = String(decoding: pending[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
                    var headers: [String: String] = [:]
                    for line in head.dropFirst() {
                        guard let colon = line.firstIndex(of: ":") else { continue }
                        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                    }
                    if let (body, consumed) = Self.body(pending[end.upperBound...], chunked: headers["transfer-encoding"] == "chunked",
                                                         length: Int(headers["content-length"] ?? "0") ?? 0) {
                        pending.removeSubrange(..<(end.upperBound + consumed))
                        let path = head.first?.split(separator: " ").dropFirst().first.map(String.init) ?? ""
                        requests.append(RecordedRequests.Request(path: path, headers: headers, body: body, head: head))
                        guard (try? Sockets.sendAll(fd, Array(answer.utf8))) != nil else { return }
                        continue
                    }
                }
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { return }
                pending += buffer[0..<n]
            }
        }
    }

    /// The whole body at the start of `bytes` and how many bytes it took, or nil
    /// while it has not all arrived.
    private static func body(_ bytes: ArraySlice<UInt8>, chunked: Bool, length: Int) -> ([UInt8], Int)? {
        guard chunked else { return bytes.count >= length ? (Array(bytes.prefix(length)), length) : nil }
        var body: [UInt8] = []
        var index = bytes.startIndex
        while true {
            guard let lineEnd = bytes[index...].firstRange(of: Array("\r\n".utf8)),
                  let size = Int(String(decoding: bytes[index..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? "", radix: 16),
                  bytes.endIndex - lineEnd.upperBound >= size + 2 else { return nil }
            body += bytes[lineEnd.upperBound..<(lineEnd.upperBound + size)]
            index = lineEnd.upperBound + size + 2
            if size == 0 { return (body, index - bytes.startIndex) }
        }
    }

    private init(ip: IPAddress, port: UInt16 = 0, handler: @escaping @Sendable (Int32) -> Void) throws {
        let fd = socket(ip.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        guard SocketEndpoint(ip: ip, port: port).withSocketAddress({ bind(fd, $0, $1) }) == 0, listen(fd, 512) == 0,
              let local = SocketEndpoint.local(of: fd) else {
            close(fd)
            throw TestFailure("backend bind failed")
        }
        listener = fd
        endpoint = local
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                guard client >= 0 else {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                guard track(client) else {
                    close(client)
                    return
                }
                Thread.detachNewThread { [self] in
                    handler(client)
                    untrack(client)
                }
            }
        }
    }

    private func track(_ fd: Int32) -> Bool {
        lock.withLock {
            guard !stopped else { return false }
            connections.insert(fd)
            return true
        }
    }

    private func untrack(_ fd: Int32) {
        lock.withLock {
            if connections.remove(fd) != nil { close(fd) }
        }
    }

    func stop() {
        lock.withLock {
            guard !stopped else { return }
            stopped = true
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
            for fd in connections { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }
}

/// A count that threads share.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

/// The requests a `LoopbackBackend.recorder` got, in order.
final class RecordedRequests: @unchecked Sendable {
    struct Request {
        var path: String
        /// Lower-cased names.
        var headers: [String: String]
        var body: [UInt8]
        /// The request line and header lines as they arrived.
        var head: [String] = []
    }

    private let lock = NSLock()
    private var requests: [Request] = []

    func append(_ request: Request) { lock.withLock { requests.append(request) } }
    var all: [Request] { lock.withLock { requests } }
}

/// A minimal HTTP/1.1 client for the tests: one request, `Connection: close`.
enum TestHTTP {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: String

        /// Whether Envoy carried it: its router adds `x-envoy-upstream-service-time`
        /// (a shim serving the port itself, or docker-proxy, adds nothing).
        var servedByEnvoy: Bool { headers["x-envoy-upstream-service-time"] != nil }
    }

    static func get(_ endpoint: SocketEndpoint, path: String = "/", headers: [String: String] = [:]) throws -> Response {
        try send("GET", to: endpoint, path: path, headers: headers)
    }

    /// `method` with `body` (a Content-Length when there is one).
    static func send(_ method: String, to endpoint: SocketEndpoint, path: String = "/", headers: [String: String] = [:], body: String = "") throws -> Response {
        let fd = try Sockets.connect(endpoint)
        defer { close(fd) }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: \(endpoint)\r\nConnection: close\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        if !body.isEmpty { request += "Content-Length: \(body.utf8.count)\r\n" }
        request += "\r\n" + body
        try Sockets.sendAll(fd, Array(request.utf8))
        let raw = String(decoding: try Sockets.receiveToEnd(fd), as: UTF8.self)
        guard let split = raw.range(of: "\r\n\r\n") else { throw TestFailure("no HTTP response from \(endpoint): \(raw.debugDescription)") }
        let lines = raw[..<split.lowerBound].components(separatedBy: "\r\n")
        guard let statusLine = lines.first, let status = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
            throw TestFailure("bad status line from \(endpoint): \(raw.debugDescription)")
        }
        var parsed: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            parsed[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = String(raw[split.upperBound...])
        if parsed["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
        return Response(status: status, headers: parsed, body: body)
    }

    /// Joins the chunks of a chunked body.
    static func dechunk(_ body: String) -> String {
        var bytes = Array(body.utf8)[...]
        var output: [UInt8] = []
        while let lineEnd = bytes.firstRange(of: Array("\r\n".utf8)) {
            let sizeText = String(decoding: bytes[..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText, radix: 16), size > 0 else { break }
            let start = lineEnd.upperBound
            guard start + size <= bytes.endIndex else { break }
            output += bytes[start..<(start + size)]
            bytes = bytes[(start + size + 2)...]
        }
        return String(decoding: output, as: UTF8.self)
    }
}
