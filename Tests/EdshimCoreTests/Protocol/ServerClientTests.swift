#if canImport(Glibc)
import Glibc
#endif
import Dispatch
@testable import EdshimCore
import Foundation
import Testing

/// The blocking client the shim uses, against a throwaway Unix socket.
@Suite("ServerClient")
struct ServerClientTests {
    /// A listening Unix socket in a fresh directory; removed by `close()`.
    final class FakeServer: @unchecked Sendable {
        let directory: String
        let path: String
        let fd: Int32

        init() throws {
            directory = "/tmp/edshim-client-\(UUID().uuidString.prefix(8))"
            path = directory + "/s.sock"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            try #require(fd >= 0)
            let bound = UnixSocketAddress.with(path: path) { bind(fd, $0, $1) }
            try #require(bound == 0)
            try #require(listen(fd, 4) == 0)
        }

        /// Accepts one connection on another thread, reads one line, answers `reply`
        /// (or closes without answering when nil), and hands back the line it read.
        func answerOnce(with reply: [UInt8]?) -> @Sendable () -> [UInt8] {
            let done = DispatchSemaphore(value: 0)
            let received = LockedBytes()
            let listener = fd
            DispatchQueue.global().async {
                defer { done.signal() }
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else { return }
                defer { Glibc.close(connection) }
                var buffer = [UInt8](repeating: 0, count: 4096)
                while !received.value.contains(UInt8(ascii: "\n")) {
                    let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
                    guard count > 0 else { break }
                    received.append(buffer[0..<count])
                }
                if let reply {
                    _ = reply.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
            }
            return {
                // A client that failed before connecting must fail the test, not hang
                // it: the accept is ended (shutdown wakes it) after 10 s.
                if done.wait(timeout: .now() + 10) == .timedOut {
                    Issue.record("the fake server got no connection in 10 s")
                    shutdown(listener, Int32(SHUT_RDWR))
                    done.wait()
                }
                return received.value
            }
        }

        func close() {
            Glibc.close(fd)
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    final class LockedBytes: @unchecked Sendable {
        private let lock = NSLock()
        private var bytes: [UInt8] = []
        var value: [UInt8] { lock.withLock { bytes } }
        func append(_ more: ArraySlice<UInt8>) { lock.withLock { bytes += more } }
    }

    @Test func exchangesOneRequestForOneResponse() throws {
        let server = try FakeServer()
        defer { server.close() }
        let registration = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx")
        let received = server.answerOnce(with: WireResponse.registrations([registration]).encoded)
        let response = try ServerClient(socketPath: server.path).exchange(.list, deadline: .after(milliseconds: 30_000))
        #expect(response == .registrations([registration]))
        #expect(try WireRequest.decode(received()) == .list)
    }

    @Test func aResponseThatIsNotOneIsMalformed() throws {
        let server = try FakeServer()
        defer { server.close() }
        let received = server.answerOnce(with: Fixture.bytes("HTTP/1.1 400 Bad Request\n"))
        let error = try #require(throws: ServerClient.Failure.self) {
            try ServerClient(socketPath: server.path).exchange(.list, deadline: .after(milliseconds: 30_000))
        }
        guard case .malformed = error else {
            Issue.record("expected .malformed, got \(error)")
            return
        }
        _ = received()
    }

    @Test func aServerThatHangsUpIsMalformed() throws {
        let server = try FakeServer()
        defer { server.close() }
        let received = server.answerOnce(with: nil)
        let error = try #require(throws: ServerClient.Failure.self) {
            try ServerClient(socketPath: server.path).exchange(.list, deadline: .after(milliseconds: 30_000))
        }
        #expect(error == .malformed("connection closed before a response"))
        _ = received()
    }

    /// The server never answers (it never even accepts), so only the interrupt can end the wait.
    @Test func aReadableInterruptDescriptorEndsTheWait() throws {
        let server = try FakeServer()
        defer { server.close() }
        #expect(try interruptedExchange(with: server) == .interrupted)
    }

    /// How an exchange with `server` ends when its interrupt descriptor is readable
    /// from the start.
    private func interruptedExchange(with server: FakeServer) throws -> ServerClient.Failure {
        var pipeFDs: [Int32] = [0, 0]
        try #require(pipe(&pipeFDs) == 0)
        defer { close(pipeFDs[0]); close(pipeFDs[1]) }
        try #require(write(pipeFDs[1], "x", 1) == 1)
        return try #require(throws: ServerClient.Failure.self) {
            try ServerClient(socketPath: server.path).exchange(.list, deadline: .after(milliseconds: 30_000), interrupt: pipeFDs[0])
        }
    }

    /// A socket whose backlog (0) one connection already fills: the server is not
    /// taking connections, and a blocking connect would wait as long as that lasts.
    private func fullBacklog(_ server: FakeServer) throws -> Int32 {
        try #require(listen(server.fd, 0) == 0)
        let first = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try #require(UnixSocketAddress.with(path: server.path) { connect(first, $0, $1) } == 0)
        return first
    }

    @Test func aServerNotTakingConnectionsTimesOutAtTheDeadline() throws {
        let server = try FakeServer()
        defer { server.close() }
        let first = try fullBacklog(server)
        defer { close(first) }
        let start = ContinuousClock.now
        let error = try #require(throws: ServerClient.Failure.self) {
            try ServerClient(socketPath: server.path).exchange(.list, deadline: .after(milliseconds: 200))
        }
        #expect(error == .timedOutBeforeSending, "the request was never sent")
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    @Test func anInterruptEndsTheWaitForAServerNotTakingConnections() throws {
        let server = try FakeServer()
        defer { server.close() }
        let first = try fullBacklog(server)
        defer { close(first) }
        #expect(try interruptedExchange(with: server) == .interruptedBeforeSending)
    }

    @Test func aServerThatNeverAnswersTimesOut() throws {
        let server = try FakeServer()
        defer { server.close() }
        let error = try #require(throws: ServerClient.Failure.self) {
            try ServerClient(socketPath: server.path).exchange(.list, deadline: .after(milliseconds: 20))
        }
        #expect(error == .timedOut)
    }

    @Test func noServerIsUnreachableWithAHint() throws {
        let path = "/tmp/edshim-absent-\(UUID().uuidString.prefix(8))/edshim.sock"
        let error = try #require(throws: ServerClient.Failure.self) {
            try ServerClient(socketPath: path).exchange(.list, deadline: .after(milliseconds: 30_000))
        }
        guard case .unreachable(let reason) = error else {
            Issue.record("expected .unreachable, got \(error)")
            return
        }
        #expect(reason.contains(path) && reason.contains("EDSHIM_SOCKET"))
    }

    @Test func anOverlongSocketPathIsRefused() throws {
        let path = "/tmp/" + String(repeating: "p", count: 200)
        let error = try #require(throws: ServerClient.Failure.self) {
            try ServerClient(socketPath: path).exchange(.list, deadline: .after(milliseconds: 30_000))
        }
        guard case .unreachable(let reason) = error else {
            Issue.record("expected .unreachable, got \(error)")
            return
        }
        #expect(reason.contains("longer than"))
    }
}
