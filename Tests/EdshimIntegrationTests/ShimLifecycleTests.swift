import EdshimCore
import Foundation
import Testing
import Synchronization

/// Stopping, the names dockerd may use, and the version probe.
@Suite("Shim lifecycle")
struct ShimLifecycleTests {
    @Test("SIGINT and SIGTERM deregister, remove the listener and exit 0 within a second", arguments: [SIGINT, SIGTERM])
    func stopSignals(signal: Int32) async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            #expect(try bed.listeners()["tcp_0.0.0.0_\(host.port)"] != nil)

            let start = ContinuousClock.now
            shim.process.signal(signal)
            let status = await shim.process.waitForExit(timeout: .seconds(1))
            #expect(status == 0, "exited \(String(describing: status)) after \(ContinuousClock.now - start)")
            #expect(try bed.listeners()["tcp_0.0.0.0_\(host.port)"] == nil, "Envoy let go of the listener before the shim exited")
            #expect(try bed.registrations().isEmpty)
            #expect(Sockets.canBind(host), "the port is free again, as dockerd expects after stopping the proxy")
        }
    }

    @Test("SIGINT while Envoy lags (stopped): the server answers the deregistration within the shim's 900 ms, and the shim exits 0 within a second")
    func deregisterWhileEnvoyLags() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            let envoy = try #require(bed.envoy)
            envoy.signal(SIGSTOP)
            defer { envoy.signal(SIGCONT) }
            let start = ContinuousClock.now
            shim.process.signal(SIGINT)
            let status = await shim.process.waitForExit(timeout: .seconds(2))
            let took = ContinuousClock.now - start
            envoy.signal(SIGCONT)
            #expect(status == 0 && took < .seconds(1), "exited \(String(describing: status)) after \(took)")
            // The shim logs only a deregistration that failed or went unanswered.
            #expect(!shim.process.log.contains("deregistering tcp 0.0.0.0:\(host.port)"), "answered in time: \(shim.process.log)")
            #expect(try bed.registrations().isEmpty)
        }
    }

    @Test("a shim whose port Envoy serves idles on one thread, in little private memory")
    func idleFootprint() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).servedByEnvoy)
            // One per published port and address family: no thread pool, event loop or
            // Foundation on this path (docs/ARCHITECTURE.md). The release build idles at
            // ~300 kB private, this debug build (dynamically linked) at ~2.2 MB.
            let status = try String(contentsOfFile: "/proc/\(shim.process.pid)/status", encoding: .utf8)
            #expect(status.split(separator: "\n").contains("Threads:\t1"), "\(status)")
            let rollup = try String(contentsOfFile: "/proc/\(shim.process.pid)/smaps_rollup", encoding: .utf8)
            let privateKiB = rollup.split(separator: "\n")
                .filter { $0.hasPrefix("Private_Clean:") || $0.hasPrefix("Private_Dirty:") }
                .compactMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) } }
            #expect(privateKiB.count == 2, "\(rollup)")
            #expect(privateKiB.reduce(0, +) < 4096, "private memory of an idle shim: \(privateKiB.reduce(0, +)) kB\n\(rollup)")
        }
    }

    @Test("run by hand, with fd 3 closed or not a pipe, it logs that it is ready, serves through Envoy and exits 0 on SIGINT", arguments: [false, true])
    func runByHand(fd3IsAFile: Bool) async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let file = bed.directory + "/fd3"
            _ = FileManager.default.createFile(atPath: file, contents: nil)
            let fd = open(file, O_WRONLY | O_CLOEXEC)
            #expect(fd >= 0)
            defer { close(fd) }
            let shim = try bed.launchShim(ShimArguments(proto: .tcp, host: host, container: backend.endpoint).commandLine, descriptors: fd3IsAFile ? [3: fd] : [:])
            try await bed.eventually("the shim says it is ready") { shim.log.contains("edshim[\(shim.pid)]: ready (no status pipe on fd 3)") }
            let response = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
            #expect(response.servedByEnvoy)
            #expect(try bed.registrations().map(\.owner.pid) == [shim.pid])
            #expect(try String(contentsOfFile: file, encoding: .utf8) == "", "nothing written to an fd 3 that is not a pipe")

            shim.signal(SIGINT)
            #expect(await shim.waitForExit(timeout: .seconds(1)) == 0, "\(shim.log)")
            #expect(try bed.registrations().isEmpty)
        }
    }

    @Test("a container restarted at once keeps its port, also when Envoy had not yet let go of it")
    func restartedWhileEnvoyLags() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let first = try await bed.publish(host, to: backend.endpoint)
            #expect(first.isReady)
            let envoy = try #require(bed.envoy)

            // Envoy stalls (a loaded host), so the stopping shim's wait for Envoy to close
            // the port runs out; the new shim for the same container registers at once.
            envoy.signal(SIGSTOP)
            first.process.signal(SIGINT)
            #expect(await first.process.waitForExit(timeout: .seconds(3)) == 0)
            #expect(try bed.registrations().isEmpty, "the first shim deregistered")
            async let second = bed.publish(host, to: backend.endpoint)
            // The case to test: the new registration is made while Envoy is still stopped.
            try await bed.eventually("the second shim's registration is made") { try !bed.registrations().isEmpty }
            envoy.signal(SIGCONT)
            let resumed = ContinuousClock.now

            let replacement = try await second
            #expect(replacement.isReady, "\(replacement.status)")
            #expect(ContinuousClock.now - resumed < .seconds(4), "answered once Envoy read the configuration, not at the 5 s ready timeout")
            // Envoy saw no change in the end and kept its socket: that serves the port.
            try await Task.sleep(for: .seconds(6))
            #expect(try bed.registrations().map(\.owner.pid) == [replacement.process.pid], "still registered after the ready timeout: \(bed.server?.log ?? "")")
            #expect(try bed.listeners()["tcp_0.0.0.0_\(host.port)"] != nil)
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).status == 200)
            #expect(bed.server?.log.contains("registration withdrawn") == false)
        }
    }

    @Test("a shim stopped while the server reads its container's labels is never registered")
    func stoppedWhileRegistering() async throws {
        try await withFakeDockerTestbed("lifecycle") { bed, docker in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let added = try bed.stat("listener_manager.listener_added")
            docker.delay.withLock { $0 = .milliseconds(200) }

            async let run = bed.publish(host, to: backend.endpoint)
            // On a thread of its own, so that busy async threads cannot make it miss the
            // moment: the server gives Docker 500 ms before it registers without labels.
            try await onThread {
                docker.waitForRequest(after: 0)
                guard let shim = ShimProcesses.all().first(where: { $0.arguments.host == host }) else {
                    throw TestFailure("no shim for \(host) while the server asked Docker about its container")
                }
                kill(shim.owner.pid, SIGINT)
            }
            let stopped = try await run
            #expect(await stopped.process.waitForExit(timeout: .seconds(2)) == 0)
            #expect(!stopped.process.log.contains("nothing is registered"), "its deregistration was taken: \(stopped.process.log)")

            try await bed.eventually("the server says the registration was never made") {
                (bed.server?.log ?? "").contains("deregistered before the registration was made")
            }
            let log = bed.server?.log ?? ""
            #expect(!log.contains("removed its port"), "no registration was made for the reaper to remove")
            #expect(try bed.registrations().isEmpty)
            #expect(try bed.stat("listener_manager.listener_added") == added, "Envoy never opened the port")
        }
    }

    @Test("a shim stopped while its registration waits on Docker, to take over the port of a shim whose dockerd exited, is never registered, and the other keeps the port")
    func stoppedWhileReplacing() async throws {
        try await withFakeDockerTestbed("replacing") { bed, docker in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            docker.set(backend.endpoint.ip, labels: ["ServiceName": "web"])
            // Only a shim whose dockerd exited leaves its port to another (live restore).
            let holder = try await OrphanableShim.start(bed, host, to: backend.endpoint, grace: "30")
            defer { holder.killIfRunning() }
            #expect(holder.status == "0\n")
            try await holder.loseDockerd()
            let asked = docker.requests.withLock { $0 }
            // Under the 500 ms the server gives Docker, with room for the stop to arrive.
            docker.delay.withLock { $0 = .milliseconds(450) }

            async let run = bed.publish(host, to: backend.endpoint)
            try await onThread {
                docker.waitForRequest(after: asked)
                guard let shim = ShimProcesses.all().first(where: { $0.arguments.host == host && $0.owner.pid != holder.pid }) else {
                    throw TestFailure("no second shim for \(host) while the server asked Docker about its container")
                }
                kill(shim.owner.pid, SIGINT)
            }
            let stopped = try await run
            #expect(await stopped.process.waitForExit(timeout: .seconds(2)) == 0)
            // Long enough for the Docker answer and a registration that went on anyway.
            try await Task.sleep(for: .seconds(1.5))
            #expect(try bed.registrations().map(\.owner.pid) == [holder.pid], "the first shim keeps the port: \(bed.server?.log ?? "")")
            #expect((bed.server?.log ?? "").contains("deregistered before the registration was made"))
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).status == 200)
            kill(holder.pid, SIGINT)
            try await bed.eventually("the first shim withdraws its port and exits", timeout: .seconds(2)) { try !holder.isRunning && bed.registrations().isEmpty }
        }
    }

    @Test("a replacement whose predecessor deregisters while Docker answers waits for Envoy: the socket Envoy is closing does not count as serving it")
    func replacedWhileDockerAnswersAndEnvoyLags() async throws {
        try await withFakeDockerTestbed("retiring") { bed, docker in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            // A known container: Docker is asked only by registrations, never by the
            // server's later looks for labels it could not read.
            docker.set(backend.endpoint.ip, labels: ["ServiceName": "web"])
            // Only a shim whose dockerd exited leaves its port to another (live restore).
            let holder = try await OrphanableShim.start(bed, host, to: backend.endpoint, grace: "30")
            defer { holder.killIfRunning() }
            #expect(holder.status == "0\n")
            try await holder.loseDockerd()
            let envoy = try #require(bed.envoy)
            let asked = docker.requests.withLock { $0 }
            docker.delay.withLock { $0 = .milliseconds(450) }

            let second = Task { () async throws -> (run: ShimRun, answeredAt: ContinuousClock.Instant) in
                let run = try await bed.publish(host, to: backend.endpoint)
                return (run, .now)
            }
            // While the server waits on Docker for the second shim's labels, Envoy stalls
            // and the holder deregisters: Envoy's socket for it stays open, closing.
            try await onThread { docker.waitForRequest(after: asked) }
            envoy.signal(SIGSTOP)
            kill(holder.pid, SIGINT)
            try await bed.eventually("the first shim exits", timeout: .seconds(3)) { !holder.isRunning }
            try await bed.eventually("the second shim's registration is made") {
                try bed.registrations().contains { $0.owner.pid != holder.pid }
            }
            // Nothing of Envoy's serves the new registration while Envoy is stopped.
            try await Task.sleep(for: .seconds(1))
            envoy.signal(SIGCONT)
            let resumed = ContinuousClock.now

            let (replacement, answeredAt) = try await second.value
            #expect(replacement.isReady, "\(replacement.status)")
            #expect(answeredAt >= resumed, "answered \(resumed - answeredAt) before Envoy, stopped, could serve it:\n\(bed.server?.log ?? "")")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).status == 200)
        }
    }

    @Test("a server that has stopped accepting cannot hold a starting shim: SIGINT still ends it within a second")
    func serverNotAccepting() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            // A socket nobody accepts on, whose backlog (0) one connection already fills:
            // a blocking connect to it would wait for as long as that lasts.
            let path = bed.directory + "/stuck.sock"
            let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            defer { close(listener) }
            #expect(UnixSocketAddress.with(path: path) { bind(listener, $0, $1) } == 0)
            #expect(listen(listener, 0) == 0)
            let first = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            defer { close(first) }
            #expect(UnixSocketAddress.with(path: path) { connect(first, $0, $1) } == 0)

            let pipe = try Sockets.pipe()
            defer { close(pipe.read) }
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try ChildProcess.spawn(
                bed.edshim, ShimArguments(proto: .tcp, host: host, container: SocketEndpoint(ip: .loopbackIPv4, port: 9)).commandLine,
                environment: ["EDSHIM_SOCKET": path], descriptors: [3: pipe.write], logPath: bed.directory + "/stuck-shim.log"
            )
            close(pipe.write)
            defer { if !shim.hasExited { shim.signal(SIGKILL); _ = shim.poll() } }
            try await Task.sleep(for: .milliseconds(300))
            #expect(!shim.hasExited, "still trying to register: \(shim.log)")
            shim.signal(SIGINT)
            #expect(await shim.waitForExit(timeout: .seconds(1)) == 0, "\(shim.log)")
        }
    }

    @Test("a shim serving its port itself after a registration went unanswered deregisters when it stops: the server may have made it")
    func unansweredRegistrationIsWithdrawn() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            // A server that reads each request and closes the connection unanswered.
            let path = bed.directory + "/mute.sock"
            let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            #expect(UnixSocketAddress.with(path: path) { bind(listener, $0, $1) } == 0)
            #expect(listen(listener, 16) == 0)
            let heard = Mutex<[String]>([])
            let mute = Thread.run {
                while true {
                    let connection = accept(listener, nil, nil)
                    guard connection >= 0 else { return }
                    var line: [UInt8] = []
                    var byte: UInt8 = 0
                    while recv(connection, &byte, 1, 0) == 1, byte != UInt8(ascii: "\n") { line.append(byte) }
                    heard.withLock { $0.append(String(decoding: line, as: UTF8.self)) }
                    close(connection)
                }
            }
            defer {
                shutdown(listener, Int32(SHUT_RDWR))
                close(listener)
                mute.wait()
            }
            let pipe = try Sockets.pipe()
            defer { close(pipe.read) }
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try ChildProcess.spawn(
                bed.edshim, ShimArguments(proto: .tcp, host: host, container: backend.endpoint).commandLine,
                environment: ["EDSHIM_SOCKET": path], descriptors: [3: pipe.write], logPath: bed.directory + "/mute-shim.log"
            )
            close(pipe.write)
            defer { if !shim.hasExited { shim.signal(SIGKILL); _ = shim.poll() } }
            #expect(await Sockets.readStatus(pipe.read).hasPrefix("0"), "\(shim.log)")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).status == 200, "served by the shim itself")
            // Between retries (250 ms, then 500 ms): no request in flight.
            try await Task.sleep(for: .milliseconds(100))
            shim.signal(SIGINT)
            #expect(await shim.waitForExit(timeout: .seconds(2)) == 0, "\(shim.log)")
            let requests = heard.withLock { $0 }
            #expect(requests.first?.contains(#""op":"register""#) == true, "\(requests)")
            #expect(requests.last?.contains(#""op":"deregister""#) == true, "a registration that may have been made is withdrawn: \(requests)\n\(shim.log)")
        }
    }

    @Test("started as docker-proxy, envoy-docker-shim or `edshim shim`, it serves", arguments: ["docker-proxy", "envoy-docker-shim", "shim-subcommand"])
    func names(name: String) async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            var arguments = ShimArguments(proto: .tcp, host: host, container: backend.endpoint).commandLine
            var argv0: String?
            if name == "shim-subcommand" {
                arguments.insert("shim", at: 0)
            } else {
                let link = bed.directory + "/" + name
                try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: bed.edshim)
                argv0 = link
            }
            let shim = try await bed.spawnShim(arguments, argv0: argv0)
            #expect(shim.isReady, "shim log: \(shim.process.log)")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).status == 200)
        }
    }

    @Test("-v and -version print the version and exit 0", arguments: ["-v", "-version", "--version"])
    func versionProbe(flag: String) async throws {
        let result = try await Binaries.run(try Binaries.edshim(), [flag], in: NSTemporaryDirectory())
        #expect(result.status == 0)
        #expect(result.output.contains(EdshimVersion.current))
    }
}
