import EdshimCore
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A Unix stream socket that hands each accepted connection to `serve` on a thread of
/// its own: the listening half of the tests' stand-ins for Docker and the server.
final class UnixStreamServer: Sendable {
    let path: String
    private let listener: Int32
    private let stopped = Mutex(false)
    /// Connections open now: stopping shuts them down, as a daemon that exits does.
    private let connections = Mutex<Set<Int32>>([])

    /// Listens on `path` (`name` says whose socket, for errors); `serve` gets each
    /// connection and returns when done with it, which closes it.
    init(path: String, name: String, serve: @escaping @Sendable (Int32) -> Void) throws {
        self.path = path
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        // A socket file left by a run that crashed, whose pid this run got again.
        unlink(path)
        guard UnixSocketAddress.with(path: path, { bind(listener, $0, $1) }) == 0, listen(listener, 128) == 0 else {
            let reason = String(cString: strerror(errno))
            close(listener)
            throw TestFailure("\(name): cannot listen on \(path): \(reason)")
        }
        Thread.detachNewThread { [self] in acceptLoop(serve) }
    }

    var isStopped: Bool { stopped.withLock { $0 } }

    /// Stops answering and removes the socket (once: a test may stop it and still
    /// have its `defer` stop it again; closing the listener twice would close whatever
    /// socket of another test got its number in between).
    func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        unlink(path)
        connections.withLock { for fd in $0 { shutdown(fd, Int32(SHUT_RDWR)) } }
    }

    private func acceptLoop(_ serve: @escaping @Sendable (Int32) -> Void) {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if isStopped { return }
                continue
            }
            connections.withLock { _ = $0.insert(client) }
            Thread.detachNewThread { [self] in
                serve(client)
                connections.withLock { _ = $0.remove(client) }
                close(client)
            }
        }
    }
}
