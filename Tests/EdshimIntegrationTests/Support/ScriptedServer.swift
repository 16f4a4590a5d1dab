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
    private let answer: @Sendable (WireRequest) -> WireResponse
    private let listener = Mutex<UnixStreamServer?>(nil)
    /// Every request decoded, in the order they came.
    let requests = Mutex<[WireRequest]>([])

    init(socketPath: String, answer: @escaping @Sendable (WireRequest) -> WireResponse) throws {
        self.answer = answer
        let listening = try UnixStreamServer(path: socketPath, name: "scripted server") { [weak self] fd in self?.serve(fd) }
        listener.withLock { $0 = listening }
    }

    /// The registrations asked for on behalf of `pid`.
    func registrations(onBehalfOf pid: Int32) -> Int {
        requests.withLock { requests in
            requests.filter { if case .register(let request) = $0 { request.onBehalfOf == pid } else { false } }.count
        }
    }

    /// Stops answering and removes the socket.
    func stop() {
        listener.withLock { $0 }?.stop()
    }

    private func serve(_ fd: Int32) {
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
