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
}
