import EdshimCore
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for `edshim server` on its Unix socket that answers each request line
/// as the test says: to see what a client (resync) makes of answers a real server
/// gives only in races.
final class ScriptedServer: Sendable {
    let socketPath: String
    private let listener: Int32
    private let answer: @Sendable (WireRequest) -> WireResponse
    private let stopped = Mutex(false)
    private let connections = Mutex<Set<Int32>>([])
    /// Every request decoded, in the order they came.
    let requests = Mutex<[WireRequest]>([])

    init(socketPath: String, answer: @escaping @Sendable (WireRequest) -> WireResponse) throws {
        self.socketPath = socketPath
        self.answer = answer
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard UnixSocketAddress.with(path: socketPath, { bind(listener, $0, $1) }) == 0, listen(listener, 128) == 0 else {
            let reason = String(cString: strerror(errno))
            close(listener)
            throw TestFailure("scripted server: cannot listen on \(socketPath): \(reason)")
        }
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// The registrations asked for on behalf of `pid`.
    func registrations(onBehalfOf pid: Int32) -> Int {
        requests.withLock { requests in
            requests.filter { if case .register(let request) = $0 { request.onBehalfOf == pid } else { false } }.count
        }
    }

    /// Stops answering and removes the socket (once).
    func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        unlink(socketPath)
        connections.withLock { for fd in $0 { shutdown(fd, Int32(SHUT_RDWR)) } }
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if stopped.withLock({ $0 }) { return }
                continue
            }
            connections.withLock { _ = $0.insert(client) }
            Thread.detachNewThread { [self] in serve(client) }
        }
    }

    private func serve(_ fd: Int32) {
        defer {
            connections.withLock { _ = $0.remove(fd) }
            close(fd)
        }
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            while let end = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<end])
                pending.removeSubrange(...end)
                let response: WireResponse
                do {
                    let request = try WireRequest.decode(line)
                    requests.withLock { $0.append(request) }
                    response = answer(request)
                } catch {
                    response = .failure(error)
                }
                guard (try? Sockets.sendAll(fd, response.encoded)) != nil else { return }
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            pending += buffer[0..<n]
        }
    }
}
