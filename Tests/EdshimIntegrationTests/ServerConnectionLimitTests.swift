import EdshimCore
import Foundation
import Testing

/// Client connections cost the server a descriptor each: it raises its soft limit to
/// the hard one, keeps at most a quarter of that open (64 to 4,096), and closes a
/// connection that goes 30 s without a request.
@Suite("Server connection limits")
struct ServerConnectionLimitTests {
    @Test("connections left open without requests are closed after 30 s (also one stuck halfway through a line, and one whose request was answered); past the most it keeps (a quarter of its raised descriptor limit) a connection is answered rate_limited and closed, and the server keeps answering once connections close")
    func idleAndExcessConnections() async throws {
        var options = Testbed.Options()
        options.serverLauncher = [try SystemExecutables.prlimit(), "--nofile=100:256", "--"]
        try await withTestbed(options) { bed in
            let pid = try #require(bed.server?.pid)
            let limits = Sockets.procFile("/proc/\(pid)/limits").split(separator: "\n").first { $0.hasPrefix("Max open files") }.map(String.init) ?? ""
            let fields = limits.split(separator: " ", omittingEmptySubsequences: true)
            #expect(fields.count >= 5 && fields[3] == "256" && fields[4] == "256", "the soft limit raised to the hard one: \(limits)")

            // 256 / 4 = 64 kept at once.
            var idle = try (0..<64).map { _ in try Sockets.connectUnix(bed.socketPath) }
            defer { for fd in idle { close(fd) } }
            let partial = idle.removeLast()
            try Sockets.sendAll(partial, Array("{\"v\":1,".utf8))
            let answered = idle.removeLast()
            #expect(try Self.exchange(.list, on: answered).contains("\"ok\":true"))
            try await Task.sleep(for: .milliseconds(300))
            let idleSince = ContinuousClock.now

            let excess = try Sockets.connectUnix(bed.socketPath)
            defer { close(excess) }
            let answer = try Self.exchange(.list, on: excess)
            #expect(answer.contains("\"code\":\"rate_limited\"") && answer.contains("the server has 64 client connections open, the most it keeps; retry in a moment"), "\(answer)")
            #expect(Self.closedByServer(excess, within: .seconds(2)), "closed after its answer")
            let silentExcess = try Sockets.connectUnix(bed.socketPath)
            defer { close(silentExcess) }
            #expect(Self.closedByServer(silentExcess, within: .seconds(3)), "one past the most, silent, is closed within a second or so")
            try await bed.eventually("the limit is logged") { (bed.server?.log ?? "").contains("64 client connections are open on the socket, the most the server keeps") }

            for fd in idle.suffix(10) { close(fd) }
            idle.removeLast(10)
            let after = try Sockets.connectUnix(bed.socketPath)
            defer { close(after) }
            #expect(try Self.exchange(.list, on: after).contains("\"ok\":true"), "answered again once connections closed")

            // The rest, left without requests: closed 30 s after their last one.
            #expect(!Self.closedByServer(partial, within: .zero), "still open before 30 s")
            try await Task.sleep(until: idleSince + .seconds(31))
            for (index, fd) in ([partial, answered] + idle).enumerated() {
                #expect(Self.closedByServer(fd, within: .seconds(3)), "connection \(index) closed after 30 s without a request")
            }
            try await bed.eventually("back under the limit, logged") { (bed.server?.log ?? "").contains("client connections are back under half the server's limit") }
            #expect(try bed.registrations().isEmpty, "the server still answers")
        }
    }

    @Test("a server out of descriptors says it cannot read which ports listen, not that Envoy does not run, and says when it can again")
    func outOfDescriptorsIsNotEnvoyDown() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), to: backend.endpoint).isReady)
            let pid = try #require(bed.server?.pid)
            let prlimit = try SystemExecutables.prlimit()
            let limits = Sockets.procFile("/proc/\(pid)/limits").split(separator: "\n").first { $0.hasPrefix("Max open files") }.map(String.init) ?? ""
            let soft = try #require(limits.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.map(String.init), "\(limits)")
            // No descriptor can be opened once the soft limit is under the lowest free one.
            let squeezed = try await Binaries.run(prlimit, ["--pid", String(pid), "--nofile=3:"], in: bed.directory)
            #expect(squeezed.status == 0, "\(squeezed.output)")
            try await bed.eventually("the check says it cannot read", timeout: .seconds(12)) {
                (bed.server?.log ?? "").contains("cannot read which ports listen, so whether Envoy serves the registered ports is not checked until it can: the server is out of file descriptors")
            }
            let restored = try await Binaries.run(prlimit, ["--pid", String(pid), "--nofile=\(soft):"], in: bed.directory)
            #expect(restored.status == 0, "\(restored.output)")
            try await bed.eventually("and when it can again", timeout: .seconds(12)) {
                (bed.server?.log ?? "").contains("the listening sockets can be read again")
            }
            let log = bed.server?.log ?? ""
            #expect(!log.contains("nothing listens on"), "Envoy was never said to be down: \(log)")
        }
    }

    /// Sends `request` on `fd` and reads its answer line.
    static func exchange(_ request: WireRequest, on fd: Int32) throws -> String {
        try Sockets.sendAll(fd, request.encoded)
        var line: [UInt8] = []
        var byte: UInt8 = 0
        var waiter = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while line.last != UInt8(ascii: "\n"), poll(&waiter, 1, 5000) > 0, read(fd, &byte, 1) == 1 { line.append(byte) }
        return String(decoding: line, as: UTF8.self)
    }

    /// Whether the server closed `fd` (end of input) within `timeout`.
    static func closedByServer(_ fd: Int32, within timeout: Duration) -> Bool {
        var waiter = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard poll(&waiter, 1, milliseconds) > 0 else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) == 0
    }
}
