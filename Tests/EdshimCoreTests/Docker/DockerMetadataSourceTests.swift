@testable import EdshimCore
import Logging
import Synchronization
import Testing

@Suite("Docker metadata source")
struct DockerMetadataSourceTests {
    /// The messages logged at warning or above.
    final class Warnings: Sendable {
        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
    }

    /// Keeps every message logged at warning or above.
    struct WarningRecorder: LogHandler {
        let warnings: Warnings
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .warning

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            warnings.lines.withLock { $0.append("\(event.message)") }
        }
    }

    @Test("a lookup cancelled while Docker has not answered (the server stopping) is not logged as Docker failing, and does not quiet the next lookups")
    func cancelledLookup() async throws {
        let docker = try DockerEngineClientTests.SilentDocker()
        let recorded = Warnings()
        let logger = Logger(label: "test") { _ in WarningRecorder(warnings: recorded) }
        let source = DockerMetadataSource(client: DockerEngineClient(host: try DockerHost(parsing: "unix://" + docker.path)), logger: logger)
        let container = SocketEndpoint(ip: .loopbackIPv4, port: 8000)

        let lookup = Task { await source.metadata(for: container) }
        try await Task.sleep(for: .milliseconds(150))
        lookup.cancel()
        #expect(await lookup.value == .unreachable)
        #expect(recorded.all.isEmpty, "\(recorded.all)")

        // Docker really not answering is still reported, and the lookup still asks it.
        let started = ContinuousClock.now
        #expect(await source.metadata(for: container) == .unreachable)
        #expect(ContinuousClock.now - started >= .milliseconds(500), "Docker was asked, not skipped as after a failure")
        let warnings = recorded.all
        #expect(warnings.count == 1 && warnings.first?.contains("cannot read container labels from Docker") == true, "\(warnings)")
    }
}
