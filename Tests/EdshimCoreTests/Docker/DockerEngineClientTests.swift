#if canImport(Glibc)
import Glibc
#endif
@testable import EdshimCore
import Foundation
import Testing

@Suite("Docker engine client")
struct DockerEngineClientTests {
    /// A Docker socket that takes connections (the kernel does) and never answers.
    final class SilentDocker {
        let directory: String
        let path: String
        private let listener: Int32

        init() throws {
            var template = Array("/tmp/edshim-silent-docker-XXXXXX".utf8CString)
            guard mkdtemp(&template) != nil else { throw POSIXError(.EIO) }
            directory = String(cString: template)
            path = directory + "/docker.sock"
            listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let bound = UnixSocketAddress.with(path: path) { bind(listener, $0, $1) }
            guard bound == 0, listen(listener, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        }

        deinit {
            close(listener)
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    @Test("calls bounded with until(_:) end at its deadline, before their own timeout, and fail at once past it")
    func deadline() async throws {
        let docker = try SilentDocker()
        // Its own timeout long, so that only the deadline can end the call soon.
        let client = DockerEngineClient(host: try DockerHost(parsing: "unix://" + docker.path), timeout: .seconds(10))

        let past = ContinuousClock.now
        await #expect(throws: DockerEngineClient.Failure.self) { try await client.until(past - .seconds(1)).negotiateVersion() }
        #expect(ContinuousClock.now - past < .seconds(1), "no call started past the deadline")

        let start = ContinuousClock.now
        let failure = await #expect(throws: DockerEngineClient.Failure.self) { try await client.until(start + .milliseconds(200)).negotiateVersion() }
        let took = ContinuousClock.now - start
        #expect(took >= .milliseconds(150), "it waited for the answer until the deadline: \(took)")
        #expect(took < .seconds(5), "and no longer (its own timeout is 10 s): \(took)")
        #expect(failure?.description.contains("/_ping") == true, "\(String(describing: failure))")
    }

    @Test("status's look at a TCP Docker host where nothing listens fails at once, not at its deadline, saying the connection was refused, in plain words")
    func refused() async throws {
        // A port nothing listens on: bound to be known free, then closed.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: 0, sin_addr: in_addr(s_addr: UInt32(0x7f00_0001).bigEndian), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        close(fd)
        let host = try DockerHost(parsing: "tcp://127.0.0.1:\(UInt16(bigEndian: address.sin_port))")
        let start = ContinuousClock.now
        let failure = await #expect(throws: DockerEngineClient.Failure.self) {
            try await PublishedPorts.look(at: host, listed: [], listeningTCP: [], boundUDP: [], isRunning: { _ in true }, timeout: .seconds(30))
        }
        #expect(failure?.description.hasSuffix("connection refused (is dockerd listening there?)") == true, "\(String(describing: failure))")
        // Far from the deadline, however loaded the machine (a retried connection
        // would fail only at it).
        #expect(ContinuousClock.now - start < .seconds(15), "at once, not at the 30 s deadline")
    }
}
