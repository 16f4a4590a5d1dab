import EdshimCore
import Foundation
import Testing

/// `edshim status` after an upgrade replaced the binary the running shims started.
@Suite("status after an upgrade")
struct StatusUpgradeTests {
    @Test("a shim running the edshim replaced since it started (an upgrade installed another file at its path) is counted in a line, and listed and checked as before")
    func shimOfAReplacedBinary() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let installed = try bed.copyOfEdshim(at: "bin/edshim")
            let arguments = ShimArguments(proto: .tcp, host: host, container: backend.endpoint).commandLine
            let old = try await bed.spawnShim(arguments, host: host, launcher: Testbed.launcher(running: installed))
            #expect(old.isReady, "\(old.process.log)")
            let before = try await Binaries.run(installed, ["status"], environment: bed.environment, in: bed.directory)
            #expect(before.status == 0 && !before.output.contains("replaced since"), "\(before.output)")

            // The upgrade: another file at the same path, as install(1) puts it.
            try FileManager.default.removeItem(atPath: installed)
            try FileManager.default.copyItem(atPath: bed.edshim, toPath: installed)
            let after = try await Binaries.run(installed, ["status"], environment: bed.environment, in: bed.directory)
            #expect(after.status == 0, "\(after.output)")
            #expect(after.output.contains("1 of these shims runs the edshim replaced since it started (an upgrade)"), "\(after.output)")
            #expect(after.output.contains("pid \(old.process.pid)"), "still listed: \(after.output)")
            let check = try await Binaries.run(installed, ["status", "--check"], environment: bed.environment, in: bed.directory)
            #expect(check.status == 0, "\(check.output)")
        }
    }
}
