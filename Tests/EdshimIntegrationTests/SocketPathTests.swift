import EdshimCore
import Foundation
import Testing

/// The server's Unix sockets (the shims' `--socket`, `--admin-address unix:`) are
/// taken only from a server that is gone, and removed at stop only while they are
/// still the server's own.
@Suite("Socket paths")
struct SocketPathTests {
    @Test("a socket whose server hangs, its backlog full, is not taken for one a killed server left: the start is refused at once and the socket left in place", arguments: ["--socket", "--admin-address"])
    func hungServerKeepsItsSocket(option: String) async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let path = bed.directory + "/hung.sock"
            let hung = try HungUnixServer(path: path)
            defer { hung.close() }
            let before = try TestFiles.identity(path)
            let arguments = option == "--socket"
                ? ["--socket", path, "--admin-address", "off"]
                : ["--socket", bed.socketPath, "--admin-address", "unix:" + path]
            let server = try ChildProcess.spawn(bed.edshim, [
                "server", "--xds-dir", bed.xdsDirectory, "--state-file", bed.stateFile,
                "--docker-host", "unix://\(bed.directory)/no-docker.sock",
            ] + arguments, logPath: bed.serverLogPath)
            let status = try await server.finish(within: .seconds(10), command: "edshim server \(arguments.joined(separator: " "))")
            #expect(status == 1, "\(server.log)")
            #expect(server.log.contains("\(path): something already listens there"), "\(server.log)")
            #expect(try TestFiles.identity(path) == before, "the hung server's socket is still there")
            #expect(!FileManager.default.fileExists(atPath: bed.stateFile), "refused before anything was written")
        }
    }

    @Test("a server removes its sockets at stop only while they are its own: sockets put in their place meanwhile stay")
    func replacedSocketsStay() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        try await withTestbed(options) { bed in
            let admin = bed.directory + "/admin.sock"
            await bed.stopServer()
            try await bed.startServer(extraArguments: ["--admin-address", "unix:" + admin])
            // What another server started after this one would do once this one's
            // sockets had been moved away: bind its own at the same paths.
            var replacements: [HungUnixServer] = []
            defer { for replacement in replacements { replacement.close() } }
            for path in [bed.socketPath, admin] {
                #expect(rename(path, path + ".moved") == 0, "rename \(path): \(String(cString: strerror(errno)))")
                replacements.append(try HungUnixServer(path: path, fillBacklog: false))
            }
            let identities = try [bed.socketPath, admin].map(TestFiles.identity)
            await bed.stopServer()
            #expect(bed.server?.poll() == 0, "the server stopped cleanly")
            #expect(try [bed.socketPath, admin].map(TestFiles.identity) == identities, "the sockets put in place are still there")
        }
    }

    @Test("a relative --socket is bound in the server's working directory, under a temporary name beside it that leaves nothing behind, also on another filesystem than / (a tmpfs, as /run is)")
    func relativeSocket() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let directory = try #require(mkdtemp(strdup("/dev/shm/edshim-test-XXXXXX")).map { String(cString: $0) }, "a directory on /dev/shm")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let server = try ChildProcess.spawn("/bin/sh", ["-c", "cd \"$0\" && exec \"$@\"", directory, bed.edshim,
                "server", "--socket", "relative.sock", "--xds-dir", bed.xdsDirectory, "--state-file", bed.stateFile,
                "--admin-address", "off", "--docker-host", "unix://\(bed.directory)/no-docker.sock"], logPath: bed.serverLogPath)
            defer { server.signal(SIGKILL) }
            let client = ServerClient(socketPath: directory + "/relative.sock")
            try await bed.eventually("the server answers on its relative socket") {
                (try? client.exchange(.list, deadline: .after(milliseconds: 500))) != nil || server.hasExited
            }
            #expect(!server.hasExited, "\(server.log)")
            server.signal(SIGTERM)
            #expect(await server.waitForExit(timeout: .seconds(5)) == 0, "\(server.log)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty, "nothing left behind")
            #expect(try FileManager.default.contentsOfDirectory(atPath: "/").filter { $0.hasPrefix(".edshim-") }.isEmpty, "nothing bound in /")
        }
    }

    @Test("a socket in a directory of 87 bytes is taken whatever the server's PID (its temporary name adds 16, and SwiftNIO binds at most 103); one byte more is refused, naming the limit")
    func directoryLengthLimit() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let longest = bed.directory + "/" + String(repeating: "d", count: 87 - bed.directory.utf8.count - 1)
            let tooLong = longest + "e"
            for directory in [longest, tooLong] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false) }
            #expect(longest.utf8.count == 87)
            func start(in directory: String) throws -> ChildProcess {
                try ChildProcess.spawn(bed.edshim, [
                    "server", "--socket", directory + "/s", "--xds-dir", bed.xdsDirectory, "--state-file", bed.stateFile,
                    "--admin-address", "off", "--docker-host", "unix://\(bed.directory)/no-docker.sock",
                ], logPath: bed.serverLogPath)
            }
            let refused = try start(in: tooLong)
            #expect(try await refused.finish(within: .seconds(10), command: "edshim server") == 1)
            #expect(refused.log.contains("choose a path whose directory is at most 87 bytes long"), "\(refused.log)")

            let server = try start(in: longest)
            defer { server.signal(SIGKILL) }
            let client = ServerClient(socketPath: longest + "/s")
            try await bed.eventually("the server answers on \(longest)/s") {
                (try? client.exchange(.list, deadline: .after(milliseconds: 500))) != nil
            }
            server.signal(SIGTERM)
            #expect(await server.waitForExit(timeout: .seconds(5)) == 0, "\(server.log)")
        }
    }

    @Test("temporary sockets that servers killed while starting left beside the path are removed at the next start; one named for a live process, a socket something listens on, and other names stay")
    func leftoversRemoved() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let directory = bed.directory + "/run"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            let exited = try ChildProcess.spawn("/bin/true", [], logPath: bed.directory + "/true.log")
            #expect(try await exited.finish(within: .seconds(5), command: "true") == 0)
            func temporaryName(_ pid: pid_t, _ counter: Int) -> String {
                let digits = String(pid, radix: 36)
                return directory + "/.edshim-" + String(repeating: "0", count: 5 - digits.count) + digits + ".\(counter)"
            }
            let leftovers = [temporaryName(exited.pid, 0), temporaryName(exited.pid, 7)]
            let stays = [temporaryName(getpid(), 1), directory + "/.edshim-other.sock", directory + "/other.sock"]
            for path in leftovers + stays { try HungUnixServer(path: path, fillBacklog: false).close() }
            let listening = temporaryName(exited.pid, 2)
            let listener = try HungUnixServer(path: listening, fillBacklog: false)
            defer { listener.close() }

            let server = try ChildProcess.spawn(bed.edshim, [
                "server", "--socket", directory + "/s", "--xds-dir", bed.xdsDirectory, "--state-file", bed.stateFile,
                "--admin-address", "off", "--docker-host", "unix://\(bed.directory)/no-docker.sock",
            ], logPath: bed.serverLogPath)
            defer { server.signal(SIGKILL) }
            let client = ServerClient(socketPath: directory + "/s")
            try await bed.eventually("the server answers on \(directory)/s") {
                (try? client.exchange(.list, deadline: .after(milliseconds: 500))) != nil || server.hasExited
            }
            for path in leftovers {
                #expect(!FileManager.default.fileExists(atPath: path), "\(path) removed")
                #expect(server.log.contains("removed a temporary socket a server killed while starting left behind"), "\(server.log)")
            }
            for path in stays + [listening] { #expect(FileManager.default.fileExists(atPath: path), "\(path) stays") }
            server.signal(SIGTERM)
            #expect(await server.waitForExit(timeout: .seconds(5)) == 0, "\(server.log)")
        }
    }

}

/// A Unix socket that listens and never accepts, as a hung server's: with
/// `fillBacklog`, connected to until the kernel takes no more connections.
private final class HungUnixServer {
    private var descriptors: [Int32] = []

    init(path: String, fillBacklog: Bool = true) throws {
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        descriptors.append(listener)
        guard UnixSocketAddress.with(path: path, { bind(listener, $0, $1) }) == 0, listen(listener, 0) == 0 else {
            close()
            throw TestFailure("listening on \(path): \(String(cString: strerror(errno)))")
        }
        guard fillBacklog else { return }
        for _ in 0..<64 {
            let client = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            descriptors.append(client)
            guard UnixSocketAddress.with(path: path, { connect(client, $0, $1) }) == 0 else {
                guard errno == EAGAIN else { throw TestFailure("connect \(path): \(String(cString: strerror(errno)))") }
                return
            }
        }
        throw TestFailure("\(path) took 64 connections with a backlog of 0")
    }

    func close() {
        for fd in descriptors { Glibc.close(fd) }
        descriptors = []
    }
}
