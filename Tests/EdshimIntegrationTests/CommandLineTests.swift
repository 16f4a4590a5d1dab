import EdshimCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// The helper modes: bootstrap, status, help.
@Suite("Command line")
struct CommandLineTests {
    @Test("edshim bootstrap prints a bootstrap Envoy validates and runs")
    func bootstrapValidates() async throws {
        let directory = NSTemporaryDirectory() + "edshim-bootstrap-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try await Binaries.run(try Binaries.edshim(), ["bootstrap", "--xds-dir", directory + "/xds", "--admin-address", "127.0.0.1:9901"], in: directory)
        #expect(result.status == 0, "\(result.output)")
        #expect(FileManager.default.fileExists(atPath: directory + "/xds/lds.json"))
        #expect(FileManager.default.fileExists(atPath: directory + "/xds/cds.json"))
        try result.output.write(toFile: directory + "/envoy.yaml", atomically: true, encoding: .utf8)
        let validation = try await Binaries.run(try Binaries.envoy(), ["--mode", "validate", "-c", directory + "/envoy.yaml"], in: directory)
        #expect(validation.status == 0, "\(validation.output)")
        #expect(validation.output.contains("OK"))
    }

    @Test("with --admin-address unix:PATH, Envoy's admin API is a socket only its own user may use (mode 0600), and answers there; --stats-address answers its reads (stats, Prometheus) and refuses the rest, so no local user can drain or stop Envoy")
    func adminOnAUnixSocket() async throws {
        let directory = NSTemporaryDirectory() + "edshim-admin-socket-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/admin.sock"
        let stats = SocketEndpoint(ip: .loopbackIPv4, port: try Sockets.freePort())
        let bootstrap = try await Binaries.run(try Binaries.edshim(), ["bootstrap", "--xds-dir", directory + "/xds", "--admin-address", "unix:" + socket, "--stats-address", stats.description], in: directory)
        #expect(bootstrap.status == 0, "\(bootstrap.output)")
        try bootstrap.output.write(toFile: directory + "/envoy.yaml", atomically: true, encoding: .utf8)
        let curl = try Binaries.onPath("curl", install: "apt-get install curl")
        let envoy = try ChildProcess.spawn(try Binaries.envoy(), ["-c", directory + "/envoy.yaml", "--disable-hot-restart", "--concurrency", "1", "-l", "warning"], logPath: directory + "/envoy.log")
        var ready = ""
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline, !ready.contains("LIVE"), !envoy.hasExited {
            try? await Task.sleep(for: .milliseconds(100))
            ready = (try? await Binaries.run(curl, ["-sS", "--unix-socket", socket, "http://envoy/ready"], in: directory).output) ?? ""
        }
        #expect(ready.contains("LIVE"), "\(ready)\n\(envoy.log)")
        var status = stat()
        #expect(stat(socket, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600, "mode \(String(status.st_mode & 0o777, radix: 8))")

        let metrics = try TestHTTP.get(stats, path: "/stats/prometheus")
        #expect(metrics.status == 200 && metrics.body.contains("envoy_server_live"), "\(metrics.status) \(metrics.body.prefix(200))")
        let drain = try TestHTTP.send("POST", to: stats, path: "/drain_listeners")
        #expect(drain.status == 405 && drain.body.contains("only GET and HEAD here"), "\(drain.status) \(drain.body)")
        // The admin API itself takes what changes anything only as POST.
        #expect(try TestHTTP.get(stats, path: "/quitquitquit").status == 405)
        try await Task.sleep(for: .milliseconds(200))
        #expect(!envoy.hasExited, "\(envoy.log)")
        await envoy.stop()
    }

    @Test("an Envoy run from edshim bootstrap takes a runtime change through its admin API (POST /runtime_modify)")
    func runtimeChangesThroughAdmin() async throws {
        try await withTestbed { bed in
            let curl = try Binaries.onPath("curl", install: "apt-get install curl")
            let modify = try await Binaries.run(curl, ["-sS", "-X", "POST", "http://\(bed.envoyAdmin)/runtime_modify?edshim.test_flag=on"], in: bed.directory)
            #expect(modify.output.trimmingCharacters(in: .whitespacesAndNewlines) == "OK", "\(modify.output)")
            let runtime = try bed.admin("/runtime")
            #expect(runtime.contains("\"edshim.test_flag\""), "\(runtime)")
        }
    }

    @Test("every way of asking for the version prints the same line", arguments: [
        ["version"], ["--version"], ["-v"], ["server", "--version"], ["bootstrap", "--version"], ["udp-proxy", "--version"], ["status", "--version"],
    ])
    func version(arguments: [String]) async throws {
        let edshim = try Binaries.edshim()
        let result = try await Binaries.run(edshim, arguments, in: NSTemporaryDirectory())
        #expect(result.status == 0, "\(result.output)")
        // The build ID the linker wrote into the file, as readelf reads it.
        let notes = try await Binaries.run(try Binaries.onPath("readelf", install: "apt-get install binutils"), ["-n", edshim], in: NSTemporaryDirectory())
        let buildID = try #require(notes.output.split(separator: "\n").first { $0.contains("Build ID:") }?.split(separator: " ").last.map(String.init), "\(notes.output)")
        #expect(buildID.count == 40)
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines) == EdshimVersion.banner(buildID: buildID))
    }

    @Test("edshim status lists registrations; --json prints an array")
    func status() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            let table = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            #expect(table.status == 0)
            #expect(table.output.contains("0.0.0.0:\(host.port)"))
            #expect(table.output.contains(backend.endpoint.description))
            #expect(table.output.contains("pid \(shim.process.pid)"))

            let json = try await Binaries.run(bed.edshim, ["status", "--json"], environment: bed.environment, in: bed.directory)
            let array = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]])
            #expect(array.count == 1)
            #expect(array.first?["host_port"] as? Int == Int(host.port))
            #expect(array.first?["owner_pid"] as? Int == Int(shim.process.pid))
            #expect(array.first?["service_name"] as? String == "unknown-\(host.port)")
        }
    }

    @Test("edshim status lists the TCP ports the server has not registered: one its shim serves itself (Envoy down), one nothing serves (the server lost it), each explained")
    func statusListsUnregisteredTCPShims() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let lost = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let lostShim = try await bed.publish(lost, to: backend.endpoint)
            #expect(lostShim.isReady)
            try await bed.restartServerWithoutState()
            try await bed.stopEnvoy()
            let itself = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let itselfShim = try await bed.publish(itself, to: backend.endpoint)
            #expect(itselfShim.status == "0\n")
            try await bed.eventually("the shim serves the port itself") { itselfShim.process.log.contains("serving tcp 0.0.0.0:\(itself.port)") }

            let table = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            #expect(table.status == 0, "\(table.output)")
            let rows = table.output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            let lostRow = rows.first { $0.last == "\(lostShim.process.pid)" }
            let itselfRow = rows.first { $0.last == "\(itselfShim.process.pid)" }
            #expect(lostRow?.prefix(6) == ["0.0.0.0:\(lost.port)", "tcp", backend.endpoint.description, "-", "-", "unserved"], "\(table.output)")
            #expect(itselfRow?.prefix(6) == ["0.0.0.0:\(itself.port)", "tcp", backend.endpoint.description, "-", "-", "itself"], "\(table.output)")
            #expect(table.output.contains("unserved: neither Envoy nor the shim serves the port (the server lost its registration): run edshim resync --socket \(bed.socketPath)"), "the hint names the socket, which is not the default: \(table.output)")
            #expect(table.output.contains("itself: the shim serves the port as docker-proxy would"), "\(table.output)")
            let check = try await Binaries.run(bed.edshim, ["status", "--check"], environment: bed.environment, in: bed.directory)
            #expect(check.status == 1, "\(check.output)")
            #expect(check.output.contains("0.0.0.0:\(lost.port) (not registered: unserved)") && check.output.contains("0.0.0.0:\(itself.port) (not registered: itself)"), "\(check.output)")

            let json = try await Binaries.run(bed.edshim, ["status", "--json"], environment: bed.environment, in: bed.directory)
            #expect(json.output.trimmingCharacters(in: .whitespacesAndNewlines) == "[]", "--json is the server's registrations only: \(json.output)")
        }
    }

    @Test("edshim status lists the UDP ports shims proxy themselves; --json only the registrations")
    func statusListsUDPShims() async throws {
        try await withUDPTestbed { bed, echoes in
            let (proxy, target) = try await bed.startUDPProxyToEcho(.dockerd2010, .ipv4, echoes: echoes)
            #expect(proxy.isReady)
            let table = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            #expect(table.status == 0, "\(table.output)")
            let row = table.output.split(separator: "\n").first { $0.hasSuffix("pid \(proxy.process.pid)") }
            let cells = try #require(row, "no line for the UDP shim in:\n\(table.output)").split(separator: " ")
            #expect(cells.count == 8, "HOST PROTO CONTAINER NAME SERVICE MODE pid N")
            #expect(cells.prefix(2) == ["0.0.0.0:\(target.port)", "udp"])
            #expect(cells[3...5] == ["-", "-", "udp-proxy"])

            let json = try await Binaries.run(bed.edshim, ["status", "--json"], environment: bed.environment, in: bed.directory)
            let array = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]])
            #expect(!array.contains { $0["owner_pid"] as? Int == Int(proxy.process.pid) })

            // Another server's status does not list this dockerd's UDP ports.
            let otherSocket = bed.directory + "/other.sock"
            let other = try ScriptedServer(socketPath: otherSocket) { _ in .registrations([]) }
            defer { other.stop() }
            let otherTable = try await Binaries.run(bed.edshim, ["status", "--socket", otherSocket], environment: bed.environment, in: bed.directory)
            #expect(!otherTable.output.contains("pid \(proxy.process.pid)"), "\(otherTable.output)")
        }
    }

    @Test("edshim status with the server down lists the TCP shims running too: `itself` for one its shim serves, `unserved` for one nothing serves (Envoy stopped), `envoy` once Envoy serves it again")
    func statusWithoutServerListsTCPShims() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let handed = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let first = try await bed.publish(handed, to: backend.endpoint)
            #expect(first.isReady)
            await bed.stopServer()
            let alone = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let second = try await bed.publish(alone, to: backend.endpoint)
            #expect(second.isReady, "served by the shim itself: \(second.status)")
            try await bed.stopEnvoy()

            let table = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            #expect(table.status == 1, "\(table.output)")
            let rows = table.output.split(separator: "\n")
            func mode(of shim: ShimRun, on host: SocketEndpoint) -> String? {
                rows.first { $0.hasPrefix("\(host) ") && $0.hasSuffix("pid \(shim.process.pid)") }?.split(separator: " ").dropLast(2).last.map(String.init)
            }
            #expect(mode(of: first, on: handed) == "unserved", "Envoy stopped: nothing serves it\n\(table.output)")
            #expect(mode(of: second, on: alone) == "itself", "\(table.output)")
            #expect(table.output.contains("unserved: neither Envoy nor the shim serves the port: start the server and Envoy"), "\(table.output)")
            #expect(table.output.contains("cannot reach the edshim server"), "\(table.output)")

            try await bed.startEnvoy()
            try await bed.eventually("Envoy listens on the port it was given") { ListenTable.read().contains { $0.endpoint == handed } }
            let again = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            let rowsAgain = again.output.split(separator: "\n")
            #expect(rowsAgain.contains { $0.hasPrefix("\(handed) ") && $0.contains(" envoy ") && $0.hasSuffix("pid \(first.process.pid)") }, "\(again.output)")
            #expect(again.output.contains("envoy: another socket listens on the port: Envoy's, as the server configured it before it could not be reached"), "\(again.output)")
        }
    }

    @Test("edshim status without a server still lists the UDP ports, and fails saying the server's registrations could not be listed")
    func statusWithoutServerListsUDPShims() async throws {
        try await withUDPTestbed { bed, echoes in
            let (proxy, target) = try await bed.startUDPProxyToEcho(.dockerd2010, .ipv4, echoes: echoes)
            #expect(proxy.isReady)
            // The server the shim's dockerd names, stopped.
            await bed.stopServer()
            let gone = bed.environment
            let table = try await Binaries.run(bed.edshim, ["status"], environment: gone, in: bed.directory)
            #expect(table.status == 1, "\(table.output)")
            let row = table.output.split(separator: "\n").first { $0.hasSuffix("pid \(proxy.process.pid)") }
            #expect(row?.hasPrefix("0.0.0.0:\(target.port)") == true, "no line for the UDP shim in:\n\(table.output)")
            #expect(table.output.contains("cannot reach the edshim server at \(bed.socketPath)"), "\(table.output)")
            #expect(table.output.contains("the ports above are those of the shims running, as this host's sockets show them (the server's registrations could not be listed)"), "\(table.output)")
            // stdout and stderr into one file: the whole table, then the error.
            let rowAt = table.output.range(of: "pid \(proxy.process.pid)")?.lowerBound
            let errorAt = table.output.range(of: "cannot reach the edshim server")?.lowerBound
            #expect(rowAt != nil && errorAt != nil && rowAt! < errorAt!, "the table first, then the error:\n\(table.output)")

            let json = try await Binaries.run(bed.edshim, ["status", "--json"], environment: gone, in: bed.directory)
            #expect(json.status == 1)
            #expect(!json.output.contains("pid \(proxy.process.pid)"), "--json is the server's registrations only:\n\(json.output)")
        }
    }

    @Test("edshim status without a server says how to start one, without the usage text")
    func statusWithoutServer() async throws {
        let result = try await Binaries.run(try Binaries.edshim(), ["status"], environment: ["EDSHIM_SOCKET": "/nonexistent/edshim.sock"], in: NSTemporaryDirectory())
        #expect(result.status != 0)
        #expect(result.output.contains("cannot reach the edshim server at /nonexistent/edshim.sock"))
        #expect(!result.output.contains("USAGE"))
    }

    @Test("status and resync given a --socket that is a file or a directory say it is not a socket, at once: resync does not wait for a server that could never answer there", arguments: ["status", "resync"])
    func socketThatIsNoSocket(mode: String) async throws {
        let directory = try ScratchDirectory.make("/tmp/edshim-test-nosocket-")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/edshim.sock"
        try Data("not a socket\n".utf8).write(to: URL(fileURLWithPath: file))
        for path in [file, directory] {
            let started = ContinuousClock.now
            let result = try await Binaries.run(try Binaries.edshim(), [mode, "--socket", path], in: directory)
            #expect(result.status == 1, "\(result.output)")
            let kind = path == file ? "a file" : "a directory"
            #expect(result.output.contains("cannot reach the edshim server at \(path): it is \(kind), not a socket"), "\(result.output)")
            #expect(!result.output.contains("is `edshim server` running"), "\(result.output)")
            // resync waits up to 10 s (--wait) for a server that is starting.
            #expect(ContinuousClock.now - started < .seconds(5), "\(mode) took \(ContinuousClock.now - started)")
        }
    }

    @Test("status and resync run by a user who may not use the server's socket say so at once, naming who may", arguments: ["status", "resync"])
    func socketThisUserMayNotUse(mode: String) async throws {
        let directory = try ScratchDirectory.make("/tmp/edshim-test-denied-")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        chmod(directory, 0o755)
        let path = directory + "/edshim.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        try #require(UnixSocketAddress.with(path: path, { bind(fd, $0, $1) }) == 0 && listen(fd, 8) == 0 && chmod(path, 0o600) == 0)
        let started = ContinuousClock.now
        let result = try await Binaries.run(try SystemExecutables.setpriv(), ["--reuid=65534", "--regid=65534", "--clear-groups", try Binaries.edshim(), mode, "--socket", path], in: directory)
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.contains("cannot reach the edshim server at \(path): Permission denied; run as root or as a member of the socket's group"), "\(result.output)")
        #expect(ContinuousClock.now - started < .seconds(5), "\(mode) took \(ContinuousClock.now - started)")
    }

    @Test("--help teaches every mode", arguments: [
        ([] as [String], "userland-proxy-path"),
        (["server"], "--xds-dir"),
        (["server"], "--access-log"),
        (["server"], "--tracing-otlp"),
        (["bootstrap"], "envoy -c"),
        (["status"], "--json"),
        (["shim"], "-use-listen-fd"),
        (["version"], "version"),
        (["resync"], "resynced N of M"),
        (["udp-proxy"], "--max-flows"),
        // An example to start from in every mode's help.
        (["server"], "Examples:\n  edshim server\n"),
        (["status"], "edshim status --check "),
        (["resync"], "Examples:\n  edshim resync\n"),
        (["shim"], "-host-ip string         host address: 0.0.0.0, ::, or one address\n"),
        (["help"], "See 'edshim help <subcommand>' for detailed help."),
    ])
    func help(arguments: [String], expected: String) async throws {
        let result = try await Binaries.run(try Binaries.edshim(), arguments + ["--help"], in: NSTemporaryDirectory())
        #expect(result.status == 0)
        #expect(result.output.contains(expected), "\(result.output)")
    }

    @Test("the shim's help names every variable it reads from dockerd's environment")
    func shimHelpNamesItsEnvironment() async throws {
        let result = try await Binaries.run(try Binaries.edshim(), ["-proto", "udp", "-h"], in: NSTemporaryDirectory())
        #expect(result.status == 0)
        for variable in ["EDSHIM_SOCKET", "EDSHIM_FALLBACK", "EDSHIM_UDP_IDLE_TIMEOUT", "EDSHIM_UDP_MAX_FLOWS", "EDSHIM_UDP_BUSY_POLL"] {
            #expect(result.output.contains(variable), "the shim's help does not mention \(variable)")
        }
    }

    @Test("bad flags of the modes other than the shim are refused (exit 64) with the reason, before anything is written", arguments: [
        (["server", "--default-mode", "udp"], "--default-mode"),
        (["server", "--admin-address", "localhost"], "--admin-address"),
        (["server", "--admin-address", "unix:admin.sock"], "--admin-address must be HOST:PORT with an IP address, like 127.0.0.1:7776 or [::1]:7776, unix: and an absolute path"),
        (["server", "--socket", "/tmp/edshim-same.sock", "--admin-address", "unix:/tmp/edshim-same.sock"], "is the shims' socket (--socket)"),
        (["server", "--socket", "/tmp/edshim-same.sock", "--admin-address", "unix:/tmp/../tmp/./edshim-same.sock"], "is the shims' socket (--socket)"),
        (["server", "--socket", "/tmp/edshim-missing/edshim.sock", "--admin-address", "unix://tmp/edshim-missing/../edshim-missing/edshim.sock"], "is the shims' socket (--socket)"),
        // A relative --socket, and the same directory through a symlink.
        (["server", "--socket", "edshim-same.sock", "--admin-address", "unix:/proc/self/cwd/edshim-same.sock"], "is the shims' socket (--socket)"),
        (["server", "--ready-timeout", "30"], "--ready-timeout"),
        (["server", "--ready-timeout", "14"], "--ready-timeout must be at least 0.001 and at most 10 seconds: a starting shim waits 12 s for the answer"),
        // Negative numbers reach the range check (not taken for flags), and a timeout
        // under a millisecond is not rounded down to none.
        (["server", "--ready-timeout", "-1"], "--ready-timeout must be at least 0.001"),
        (["server", "--ready-timeout", "0.0005"], "--ready-timeout must be at least 0.001"),
        (["server", "--envoy-drain-time", "-5"], "--envoy-drain-time must be between 0 and 86400 seconds"),
        (["server", "--peer-rate", "-1"], "--peer-rate must be between 1 and 1000000"),
        (["resync", "--wait", "-1"], "--wait must be between 0 and 3600 seconds"),
        (["resync", "--parallel", "-3"], "--parallel must be between 1 and 256"),
        (["server", "--docker-host", "http://x"], "--docker-host"),
        (["server", "--access-log", "access.log"], "--access-log must be stdout, stderr, off or an absolute file path"),
        (["server", "--access-log", "/nonexistent/envoy/access.log"], "the directory /nonexistent/envoy does not exist, and Envoy would refuse every listener"),
        (["server", "--access-log", "/tmp"], "--access-log /tmp: it is a directory"),
        // Envoy (root) would append to what another user plants there first.
        (["server", "--access-log", "/tmp/edshim-access.log"], "--access-log /tmp/edshim-access.log: /tmp may be written by any user (mode 1777, as /tmp): another user could plant a file or a link there first; choose a directory only root may write"),
        (["status", "--docker-host", "docker.sock"], "--docker-host: docker host docker.sock must start with unix:// or tcp://"),
        (["server", "--ready-timeout", "0"], "--ready-timeout must be at least 0.001"),
        (["server", "--socket", ""], "--socket must name the socket's path"),
        (["server", "--xds-dir", ""], "--xds-dir must name the directory Envoy watches"),
        (["server", "--state-file", ""], "--state-file must name a file"),
        (["server", "--state-file", "/tmp"], "--state-file /tmp is a directory: name a file in it, like /tmp/state.json"),
        (["bootstrap", "--xds-dir", ""], "--xds-dir must name the directory edshim server writes into"),
        (["bootstrap", "--admin-address", "unix:admin.sock"], "or unix: and an absolute path"),
        (["bootstrap", "--stats-address", "localhost:9901"], "--stats-address must be HOST:PORT with an IP address"),
        (["bootstrap", "--stats-address", "127.0.0.1:9901"], "are the same port: put the admin API on a Unix socket"),
        (["server", "--trusted-proxy-hops", "11"], "--trusted-proxy-hops must be between 0 and 10"),
        // --log-level is checked after --peer-rate: should the rate pass, no server starts.
        (["server", "--peer-rate", "inf", "--log-level", "loud"], "--peer-rate must be between 1 and 1000000"),
        (["resync", "--wait", "inf"], "--wait must be between 0 and 3600 seconds"),
        (["resync", "--wait", "1e300"], "--wait must be between 0 and 3600 seconds"),
        (["resync", "--socket", ""], "--socket must name the server's socket"),
        (["status", "--socket", ""], "--socket must name the server's socket"),
        (["help", "sever"], "no mode named \"sever\": edshim help takes one of shim, server, resync"),
    ])
    func badServerFlags(arguments: [String], expected: String) async throws {
        let result = try await Binaries.run(try Binaries.edshim(), arguments, in: NSTemporaryDirectory())
        #expect(result.status == 64, "\(result.output)")
        #expect(result.output.contains(expected), "\(result.output)")
    }

    @Test("edshim bootstrap warns when Envoy's admin address is the server's")
    func bootstrapOnServerAdminAddress() async throws {
        let directory = NSTemporaryDirectory() + "edshim-bootstrap-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let xds = directory + "/xds"
        let clash = try await Binaries.run(try Binaries.edshim(), ["bootstrap", "--xds-dir", xds, "--admin-address", "0.0.0.0:7776"], in: directory)
        #expect(clash.status == 0)
        #expect(clash.output.contains("warning: --admin-address 0.0.0.0:7776 is where edshim server listens by default"), "\(clash.output)")
        let apart = try await Binaries.run(try Binaries.edshim(), ["bootstrap", "--xds-dir", xds], in: directory)
        #expect(apart.status == 0)
        #expect(!apart.output.contains("warning"), "\(apart.output)")
    }
}
