import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `edshim status` asked on a socket that is not the default, where dockerd's shims
/// were not given it (no `EDSHIM_SOCKET` in dockerd's environment): they register
/// with the default one, where no server listens, and serve their ports themselves.
/// Run in a network namespace of their own, so that other tests' `status --check`,
/// which look at the host's, never see them.
@Suite("status and the shims of a dockerd not given the server's socket")
struct StatusOtherSocketTests {
    @Test("a TCP shim registering with the default socket, where nothing listens, is listed as other-socket with both sockets named, and fails --check; another server's shim is counted in a line, not listed", .needsPrivateNetworkNamespaces)
    func shimOfADockerdWithoutTheSocket() async throws {
        try #require(ServerClient(socketPath: EdshimDefaults.socketPath).nothingListens, "a server listens at \(EdshimDefaults.socketPath): this test's shim would register with it")
        try await withTestbed { bed in
            try await withPrivateNetworkNamespace(loopbackAddresses: [], logDirectory: bed.directory) { namespace in
                let container = try await namespace.run { try LoopbackBackend.echo() }
                defer { container.stop() }
                func shim(socket: String) async throws -> (ShimRun, SocketEndpoint) {
                    let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
                    let arguments = ShimArguments(proto: .tcp, host: host, container: container.endpoint).commandLine
                    return (try await bed.spawnShim(arguments, environment: ["EDSHIM_SOCKET": socket], host: host, networkNamespace: namespace), host)
                }
                // An empty EDSHIM_SOCKET is the default socket, as an unset one.
                let (stray, strayHost) = try await shim(socket: "")
                #expect(stray.isReady, "served by the shim itself: \(stray.process.log)")
                let otherSocket = bed.directory + "/other.sock"
                let other = try ScriptedServer(socketPath: otherSocket) { _ in .ok }
                defer { other.stop() }
                let (others, _) = try await shim(socket: otherSocket)
                #expect(!others.process.hasExited, "\(others.process.log)")

                func status(_ arguments: [String]) async throws -> (status: Int32, output: String) {
                    let log = bed.directory + "/status-\(UUID().uuidString.prefix(8)).log"
                    let process = try await namespace.run { try ChildProcess.spawn(bed.edshim, arguments, environment: bed.environment, logPath: log) }
                    let status = try await process.finish(within: .seconds(15), command: "edshim \(arguments.joined(separator: " "))")
                    return (status, process.log)
                }
                let table = try await status(["status"])
                #expect(table.status == 0, "\(table.output)")
                let row = table.output.split(separator: "\n").first { $0.hasSuffix("pid \(stray.process.pid)") }
                #expect(row?.split(separator: " ").dropLast(2).last == "other-socket", "\(table.output)")
                #expect(table.output.contains("other-socket: the shim registers with \(EdshimDefaults.socketPath) (its dockerd's EDSHIM_SOCKET, else the default), where no server answers, so it serves its port itself, without Envoy: give dockerd EDSHIM_SOCKET=\(bed.socketPath)"), "\(table.output)")
                #expect(!table.output.contains("pid \(others.process.pid)"), "another server's shim is not listed: \(table.output)")
                #expect(table.output.contains("1 more TCP port's shim registers with the server at \(otherSocket): EDSHIM_SOCKET=\(otherSocket) edshim status lists it"), "\(table.output)")

                let check = try await status(["status", "--check"])
                #expect(check.status == 1, "\(check.output)")
                #expect(check.output.contains("\(strayHost) (not registered: its shim registers with \(EdshimDefaults.socketPath), where no server answers)"), "\(check.output)")
            }
        }
    }
}
