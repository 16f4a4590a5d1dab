import EdshimCore
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Socket helpers for the harness: free ports, bound listeners, status pipes.
enum Sockets {
    /// A port free on 0.0.0.0 and :: right now, for TCP and UDP, never handed out
    /// before in this run (tests run in parallel). It comes from below the kernel's
    /// ephemeral range (`freeUDPPort`), where no socket bound to port 0 — Envoy's
    /// upstream connections, backends, UDP clients, another test's demo — can take it
    /// before the test binds it.
    static func freePort() throws -> UInt16 {
        try freeUDPPort()
    }

    /// Whether dockerd could bind `endpoint` now: with SO_REUSEADDR, as dockerd binds,
    /// so connections lingering in TIME_WAIT do not count.
    static func canBind(_ endpoint: SocketEndpoint) -> Bool {
        let fd = socket(endpoint.family, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        if endpoint.ip.isIPv6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, 4) }
        return endpoint.withSocketAddress { bind(fd, $0, $1) } == 0
    }

    /// What dockerd ≥ 28 does before starting the proxy: bind the host port with
    /// SO_REUSEADDR (v6-only for IPv6) and listen.
    static func dockerdBoundListener(_ endpoint: SocketEndpoint) throws -> Int32 {
        try listener(endpoint, reusePort: false)
    }

    /// A listener as another program on the host may open one: SO_REUSEPORT before
    /// `bind`, which lets any socket of the same user that does the same join it.
    static func reusePortListener(_ endpoint: SocketEndpoint) throws -> Int32 {
        try listener(endpoint, reusePort: true)
    }

    /// A listener on `[::]:port` that takes IPv4 too, as Go's `net.Listen("tcp", ":port")`
    /// opens one (IPV6_V6ONLY off, the Linux default): no IPv4 socket can bind the port.
    static func dualStackListener(port: UInt16) throws -> Int32 {
        try listener(SocketEndpoint(ip: .anyIPv6, port: port), reusePort: false, v6Only: false)
    }

    private static func listener(_ endpoint: SocketEndpoint, reusePort: Bool, v6Only: Bool = true) throws -> Int32 {
        let fd = socket(endpoint.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        var v6OnlyFlag: Int32 = v6Only ? 1 : 0
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, 4) }
        if endpoint.ip.isIPv6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &v6OnlyFlag, 4) }
        // The backlog Go's net.Listen (dockerd) asks for: net.core.somaxconn, capped by it.
        guard endpoint.withSocketAddress({ bind(fd, $0, $1) }) == 0, listen(fd, 4096) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw TestFailure("binding \(endpoint): \(reason)")
        }
        return fd
    }

    /// The local port a socket is bound to (`getsockname`).
    static func localPort(of fd: Int32) throws -> UInt16 {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        guard result == 0 else { throw TestFailure("getsockname: \(String(cString: strerror(errno)))") }
        return withUnsafeBytes(of: &address) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
    }

    /// The socket inode of `fd`, as /proc/net/tcp shows it.
    static func inode(of fd: Int32) -> UInt64 {
        var info = stat()
        fstat(fd, &info)
        return UInt64(info.st_ino)
    }

    /// A pipe, both ends close-on-exec.
    static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else { throw TestFailure("pipe failed") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }

    /// Reads a proxy's report on fd 3 as dockerd does: the first two bytes, and when
    /// they are `0\n` it goes on at once (anything already written after them is
    /// kept, so that a report with more in it is not taken for ready); otherwise
    /// everything up to EOF, the reason. dockerd gives up after 16 s.
    static func readStatus(_ fd: Int32) async -> String {
        await readAll(fd, timeout: .seconds(16)) { $0.starts(with: Array("0\n".utf8)) }
    }

    /// Reads until EOF or timeout (the shim closes its end after reporting), or until
    /// what was read is `enough`: then only what is already there is added.
    static func readAll(_ fd: Int32, timeout: Duration, enough: ([UInt8]) -> Bool = { _ in false }) async -> String {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes += buffer[0..<count]
                guard enough(bytes) else { continue }
                while case let more = buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }), more > 0 {
                    bytes += buffer[0..<more]
                }
                break
            }
            if count == 0 { break }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A connection to the Unix socket at `path`.
    static func connectUnix(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw TestFailure("connecting to \(path): \(reason)")
        }
        return fd
    }

    /// Connects to `endpoint`, blocking, with a timeout on each read; `receiveBuffer`:
    /// the bytes the socket may hold unread, set before it connects (a slow reader).
    static func connect(_ endpoint: SocketEndpoint, timeoutSeconds: Int = 5, receiveBuffer: Int32? = nil) throws -> Int32 {
        let fd = socket(endpoint.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if var receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receiveBuffer, socklen_t(MemoryLayout<Int32>.size)) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard endpoint.withSocketAddress({ Glibc.connect(fd, $0, $1) }) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw TestFailure("connecting to \(endpoint): \(reason)")
        }
        return fd
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw TestFailure("send: \(String(cString: strerror(errno)))") }
            offset += written
        }
    }

    /// Reads exactly `count` bytes (or throws on EOF/timeout).
    static func receive(_ fd: Int32, count: Int) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count < count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, count - bytes.count), 0) }
            guard n > 0 else { throw TestFailure("receive: got \(bytes.count) of \(count) bytes (\(n == 0 ? "EOF" : String(cString: strerror(errno))))") }
            bytes += buffer[0..<n]
        }
        return bytes
    }

    /// Reads until EOF.
    static func receiveToEnd(_ fd: Int32) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return bytes }
            guard n > 0 else { throw TestFailure("receive: \(String(cString: strerror(errno)))") }
            bytes += buffer[0..<n]
        }
    }
}

extension Thread {
    /// A finished-or-not handle for work on its own thread.
    final class Completion: @unchecked Sendable {
        private let semaphore = DispatchSemaphore(value: 0)
        func signal() { semaphore.signal() }
        func wait() { semaphore.wait() }
    }

    /// Runs `work` on a new thread (blocking I/O that must not occupy Swift
    /// concurrency's few threads).
    static func run(_ work: @escaping @Sendable () -> Void) -> Completion {
        let completion = Completion()
        Thread.detachNewThread {
            work()
            completion.signal()
        }
        return completion
    }
}
