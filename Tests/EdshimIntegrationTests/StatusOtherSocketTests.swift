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

    @Test("a program that only names itself a shim (comm edshim and docker-proxy flags, another executable: any user can start one), or edshim started by another user, is not listed by status, fails no --check, and gets no socket of its choosing connected to")
    func impostorIsNotAShim() async throws {
        try await withTestbed { bed in
            let impostor = try await Impostor.build(in: bed.directory)
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let flags = ShimArguments(proto: .tcp, host: host, container: SocketEndpoint(ip: .loopbackIPv4, port: 9)).commandLine
            // One names this server's socket (a port nothing serves, which --check
            // would fail), one a socket of its own (which status would connect to).
            let bait = try ChildProcess.spawn(impostor, flags, argv0: "edshim", environment: bed.environment, logPath: bed.directory + "/impostor.log")
            defer { bait.signal(SIGKILL) }
            let ownSocket = bed.directory + "/impostor.sock"
            let listener = try ScriptedServer(socketPath: ownSocket) { _ in .ok }
            defer { listener.stop() }
            let other = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let elsewhere = try ChildProcess.spawn(impostor, ShimArguments(proto: .tcp, host: other, container: SocketEndpoint(ip: .loopbackIPv4, port: 9)).commandLine, argv0: "edshim", environment: ["EDSHIM_SOCKET": ownSocket], logPath: bed.directory + "/impostor2.log")
            defer { elsewhere.signal(SIGKILL) }
            try await bed.eventually("both name themselves edshim") {
                ShimProcesses.all().filter { [bait.pid, elsewhere.pid].contains($0.owner.pid) }.count == 2
            }

            // And this very edshim, started by another user (it is world-executable).
            let stranger = try await bed.spawnShim(
                ShimArguments(proto: .tcp, host: SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), container: SocketEndpoint(ip: .loopbackIPv4, port: 9)).commandLine,
                launcher: [try SystemExecutables.setpriv(), "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
            )
            #expect(stranger.isReady, "it serves the port itself: \(stranger.process.log)")

            let table = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            #expect(!table.output.contains("pid \(bait.pid)") && !table.output.contains(ownSocket), "\(table.output)")
            #expect(!table.output.contains("pid \(stranger.process.pid)"), "\(table.output)")
            let check = try await Binaries.run(bed.edshim, ["status", "--check"], environment: bed.environment, in: bed.directory)
            #expect(check.status == 0, "\(check.output)")
            #expect(!check.output.contains(host.description), "\(check.output)")
        }
    }
}

/// A program that names itself edshim (prctl PR_SET_NAME) and does nothing, built
/// with the toolchain's C compiler: what any user can start.
private enum Impostor {
    static func build(in directory: String) async throws -> String {
        let source = directory + "/impostor.c"
        let binary = directory + "/impostor"
        try Data("#include <sys/prctl.h>\n#include <unistd.h>\nint main(void) { prctl(PR_SET_NAME, \"edshim\"); for (;;) pause(); }\n".utf8).write(to: URL(fileURLWithPath: source))
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        var candidates: [String] = []
        for name in ["clang", "cc", "gcc"] {
            for directory in directories { candidates.append(directory + "/" + name) }
        }
        guard let compiler = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw TestFailure("no C compiler (clang, cc, gcc) on PATH: the Swift toolchain's clang is next to swift")
        }
        let process = try ChildProcess.spawn(compiler, ["-o", binary, source], logPath: directory + "/impostor-build.log")
        guard try await process.finish(within: .seconds(60), command: "\(compiler) impostor.c") == 0 else { throw TestFailure("building the impostor: \(process.log)") }
        return binary
    }
}
