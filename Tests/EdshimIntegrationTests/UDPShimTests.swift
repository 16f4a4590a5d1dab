import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The UDP shim as dockerd sees it: what it reports on fd 3, how it stops, and how
/// it refuses; and `edshim udp-proxy`'s command line.
@Suite("UDP shim")
struct UDPShimTests {
    @Test("SIGINT and SIGTERM stop it with exit 0 within a second, logging which port stopped and who sent the signal", arguments: UDPWay.allCases, [SIGINT, SIGTERM])
    func stops(way: UDPWay, signal: Int32) async throws {
        try await withUDPTestbed { bed, echoes in
            let echo = try echoes.start(on: .loopbackIPv4)
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freeUDPPort())
            let proxy = try await bed.startUDPProxy(way, host: host, container: echo.endpoint)
            #expect(proxy.isReady)
            let target = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
            let client = try UDPTestClient(.ipv4)
            _ = try await onThread { try client.exchange(Array("busy".utf8), with: target) }

            let start = ContinuousClock.now
            proxy.process.signal(signal)
            let status = await proxy.process.waitForExit(timeout: .seconds(1))
            #expect(status == 0, "exited \(String(describing: status)) after \(ContinuousClock.now - start): \(proxy.process.log)")
            #expect(Sockets.canBindUDP(host), "the port is free again")
            // docker stop, rm -f and kill end it that way: the system log says so, and
            // who sent it, as the kernel says.
            #expect(proxy.process.log.contains("udp \(host) → \(echo.endpoint): stopped by signal \(signal) from pid \(getpid())"), "\(proxy.process.log)")
            #expect(!proxy.process.log.contains("from pid \(proxy.process.pid)"), "\(proxy.process.log)")
        }
    }

    @Test("edshim udp-proxy run by hand blocks SIGINT and SIGTERM in every thread: each stop names the signal's sender")
    func standaloneStopsNameTheSender() async throws {
        try await withUDPTestbed { bed, echoes in
            let echo = try echoes.start(on: .loopbackIPv4)
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freeUDPPort())
            let arguments = ["udp-proxy"] + ShimArguments(proto: .udp, host: host, container: echo.endpoint).commandLine.dropFirst(2)
            // A signal the kernel gave a thread that did not block it reached the proxy
            // without its sender, about every other run: ten runs.
            for run in 0..<10 {
                let proxy = try bed.launchShim(Array(arguments), descriptors: [:])
                let lines = { proxy.log.split(separator: "\n").filter { $0.hasPrefix("edshim[\(proxy.pid)]: ") } }
                try await bed.eventually("run \(run) proxies") { lines().contains { $0.contains("proxying udp \(host) → \(echo.endpoint)") } }
                #expect(Sockets.threadsBlockingTerminationSignals(of: proxy.pid) == Sockets.threads(of: proxy.pid), "run \(run): every thread blocks them")
                proxy.signal(SIGTERM)
                let exit = await proxy.waitForExit(timeout: .seconds(1))
                #expect(exit == 0, "run \(run) exited \(String(describing: exit)): \(lines())")
                let stop = lines().first { $0.contains("stopped by signal") } ?? ""
                #expect(stop.hasSuffix("udp \(host) → \(echo.endpoint): stopped by signal \(SIGTERM) from pid \(getpid()) (\(try Self.ownName()))"), "run \(run): \(lines())")
                // With no status pipe to report to, run by hand: no line about one.
                #expect(!lines().contains { $0.contains("status pipe") }, "run \(run): \(lines())")
            }
        }
    }

    /// This test process's name (`comm`), as the proxy names a signal's sender.
    private static func ownName() throws -> String {
        try String(contentsOfFile: "/proc/self/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("edshim udp-proxy signalled while it starts still exits 0", arguments: [SIGINT, SIGTERM])
    func signalledWhileStarting(signal: Int32) async throws {
        try await withUDPTestbed { bed, echoes in
            let echo = try echoes.start(on: .loopbackIPv4)
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freeUDPPort())
            let arguments = ["udp-proxy"] + ShimArguments(proto: .udp, host: host, container: echo.endpoint).commandLine.dropFirst(2)
            let (proxy, status) = try bed.launchShim(Array(arguments))
            defer { close(status) }
            // As early as edshim can take a signal: once it runs (the exec is done)
            // and blocks SIGINT and SIGTERM, which it does first thing in main,
            // before its command line is parsed and the port bound.
            let (pid, edshim) = (proxy.pid, URL(fileURLWithPath: bed.edshim).resolvingSymlinksInPath().path)
            let blocking = try await onThread {
                let deadline = ContinuousClock.now + .seconds(2)
                while ContinuousClock.now < deadline {
                    let runsEdshim = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) == edshim
                    if runsEdshim, Sockets.threadsBlockingTerminationSignals(of: pid) > 0 { return true }
                    sched_yield()
                }
                return false
            }
            #expect(blocking, "udp-proxy never blocked SIGINT and SIGTERM: \(proxy.log)")
            proxy.signal(signal)
            let exit = await proxy.waitForExit(timeout: .seconds(2))
            #expect(exit == 0, "exited \(String(describing: exit)): \(proxy.log)")
            let report = await Sockets.readAll(status, timeout: .seconds(1))
            #expect(report == "0\n", "reported \(report.debugDescription)")
            #expect(Sockets.canBindUDP(host), "the port is free again")
            // Held until the proxy took it, with its sender.
            #expect(proxy.log.contains("edshim[\(pid)]: udp \(host) → \(echo.endpoint): stopped by signal \(signal) from pid \(getpid())"), "\(proxy.log)")
        }
    }

    @Test("the UDP shim needs no server", arguments: [SpawnStyle.dockerd2010, .dockerd28], UDPFamily.allCases)
    func noServerNeeded(style: SpawnStyle, family: UDPFamily) async throws {
        try await withUDPTestbed { bed, echoes in
            await bed.stopServer()
            let (shim, target) = try await bed.startUDPProxyToEcho(style == .dockerd28 ? .dockerd28 : .dockerd2010, family, echoes: echoes)
            #expect(shim.status == "0\n", "reported \(shim.status.debugDescription): \(shim.process.log)")
            let reply = try await onThread { try UDPTestClient(family).exchange(Array("ping".utf8), with: target) }
            #expect(reply == Array("ping".utf8))
            // Nothing set in dockerd's environment: docker-proxy's 90 s, and the bound.
            #expect(shim.process.log.contains("(flows idle for 90.0 s close; at most \(UDPProxyOptions.defaultMaxFlows))"), "\(shim.process.log)")
        }
    }

    @Test("a port in use is refused the way docker-proxy words it, naming the process that holds it", arguments: UDPFamily.allCases)
    func portInUse(family: UDPFamily) async throws {
        try await withUDPTestbed { bed, _ in
            let host = SocketEndpoint(ip: family.any, port: try Sockets.freeUDPPort())
            let squatter = try Sockets.dockerdBoundUDPSocket(host)
            defer { close(squatter) }
            let shim = try await bed.startUDPProxy(.dockerd2010, host: host, container: SocketEndpoint(ip: family.loopback, port: 9))
            #expect(shim.status.hasPrefix("1\nlisten udp \(host): bind: address already in use"), "reported \(shim.status.debugDescription)")
            #expect(shim.status.contains("another host port"), "the reason says what to do")
            let name = try String(contentsOfFile: "/proc/self/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(shim.status.contains(": \(name) (pid \(getpid())) already uses udp \(host)"), "who holds it: \(shim.status.debugDescription)")
            #expect(!shim.status.dropFirst(2).contains("\n"), "the reason is one line")
            #expect(await shim.process.waitForExit(timeout: .seconds(2)) == 1)
        }
    }

    @Test("an IPv4 port held by another program's IPv6 socket that takes IPv4 too (bound to ::, not v6-only) is refused naming that program and where it is bound")
    func portInUseByADualStackSocket() async throws {
        try await withUDPTestbed { bed, _ in
            let port = try Sockets.freeUDPPort()
            let squatter = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(squatter) }
            var zero: Int32 = 0
            setsockopt(squatter, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
            let dualStack = SocketEndpoint(ip: .anyIPv6, port: port)
            #expect(dualStack.withSocketAddress { Glibc.bind(squatter, $0, $1) } == 0)
            let host = SocketEndpoint(ip: .anyIPv4, port: port)
            let shim = try await bed.startUDPProxy(.dockerd2010, host: host, container: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            let name = try String(contentsOfFile: "/proc/self/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(shim.status == "1\nlisten udp \(host): bind: address already in use: \(name) (pid \(getpid())) already uses udp \(dualStack); stop it, or publish the container on another host port", "\(shim.status.debugDescription)")
            #expect(await shim.process.waitForExit(timeout: .seconds(2)) == 1)
        }
    }

    @Test("a port held by another program's connected UDP socket is refused naming that program, the socket's addresses, and how to see it")
    func portInUseByAConnectedSocket() async throws {
        try await withUDPTestbed { bed, _ in
            let port = try Sockets.freeUDPPort()
            let squatter = try Sockets.dockerdBoundUDPSocket(SocketEndpoint(ip: .loopbackIPv4, port: port))
            defer { close(squatter) }
            let peer = SocketEndpoint(ip: .loopbackIPv4, port: 5353)
            #expect(peer.withSocketAddress { Glibc.connect(squatter, $0, $1) } == 0)
            let host = SocketEndpoint(ip: .anyIPv4, port: port)
            let shim = try await bed.startUDPProxy(.dockerd2010, host: host, container: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            #expect(shim.status == "1\nlisten udp \(host): bind: address already in use: a connected UDP socket of \(try Self.ownName()) (pid \(getpid())) holds local port \(port) (127.0.0.1:\(port) → \(peer)), ss -uanp 'sport = :\(port)' shows it; stop it, or publish the container on another host port", "\(shim.status.debugDescription)")
            #expect(await shim.process.waitForExit(timeout: .seconds(2)) == 1)
        }
    }

    @Test("a port held by another edshim UDP proxy's flow is refused naming that proxy and when it frees the port, never telling to stop it")
    func portInUseByAnotherProxysFlow() async throws {
        try await withUDPTestbed { bed, echoes in
            let (other, target) = try await bed.startUDPProxyToEcho(.dockerd2010, .ipv4, echoes: echoes)
            #expect(other.isReady)
            // The echo server answers `whoami` with where the other proxy's flow comes from.
            let flow = try await onThread { try UDPTestClient(.ipv4).upstreamAddress(via: target) }
            let port = try #require(flow.split(separator: ":").last.flatMap { UInt16($0) }, "\(flow)")
            let host = SocketEndpoint(ip: .anyIPv4, port: port)
            let shim = try await bed.startUDPProxy(.standalone, host: host, container: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            #expect(shim.status.hasPrefix("1\nlisten udp \(host): bind: address already in use: a connected UDP socket of edshim (pid \(other.process.pid)) holds local port \(port) (\(flow) → "), "\(shim.status.debugDescription)")
            #expect(shim.status.contains(": a flow of another edshim UDP proxy, which frees the port when the flow expires"), "\(shim.status.debugDescription)")
            #expect(shim.status.contains("ss -uanp 'sport = :\(port)' shows it"), "\(shim.status.debugDescription)")
            #expect(shim.status.hasSuffix("or start it again once the flow has expired"), "\(shim.status.debugDescription)")
            #expect(!shim.status.contains("stop it"), "\(shim.status.debugDescription)")
            #expect(await shim.process.waitForExit(timeout: .seconds(2)) == 1)
        }
    }

    @Test("an IPv4-mapped host address is refused saying which address to publish on instead")
    func mappedHostAddress() async throws {
        try await withUDPTestbed { bed, _ in
            let host = SocketEndpoint(ip: try #require(IPAddress("::ffff:127.0.0.1")), port: try Sockets.freeUDPPort())
            let shim = try await bed.startUDPProxy(.dockerd2010, host: host, container: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            #expect(shim.status == "1\nlisten udp \(host): bind: invalid argument: ::ffff:127.0.0.1 is an IPv4-mapped address, which IPv6 sockets bound v6-only (docker-proxy's, Envoy's, edshim's) cannot take; publish on 127.0.0.1 instead",
                    "reported \(shim.status.debugDescription)")
            #expect(await shim.process.waitForExit(timeout: .seconds(2)) == 1)
        }
    }

    struct BadSetting: CustomStringConvertible, Sendable {
        let variable: String
        let value: String
        var description: String { "\(variable)=\(value)" }
    }

    static let badSettings: [BadSetting] = [
        BadSetting(variable: UDPProxyOptions.idleTimeoutEnvironmentVariable, value: "soon"),
        BadSetting(variable: UDPProxyOptions.idleTimeoutEnvironmentVariable, value: "0"),
        BadSetting(variable: UDPProxyOptions.idleTimeoutEnvironmentVariable, value: "-5s"),
        BadSetting(variable: UDPProxyOptions.maxFlowsEnvironmentVariable, value: "0"),
        BadSetting(variable: UDPProxyOptions.maxFlowsEnvironmentVariable, value: "many"),
        BadSetting(variable: UDPProxyOptions.busyPollEnvironmentVariable, value: "always"),
    ]

    @Test("bad EDSHIM_UDP_* settings in dockerd's environment answer 1\\n<reason>", arguments: UDPShimTests.badSettings)
    func badEnvironment(bad: BadSetting) async throws {
        try await withUDPTestbed { bed, _ in
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freeUDPPort())
            let arguments = ShimArguments(proto: .udp, host: host, container: SocketEndpoint(ip: .loopbackIPv4, port: 9)).commandLine
            let shim = try await bed.spawnShim(arguments, environment: [bad.variable: bad.value])
            #expect(shim.status.hasPrefix("1\n"))
            #expect(shim.status.contains(bad.variable), "reason was: \(shim.status)")
            #expect(await shim.process.waitForExit(timeout: .seconds(2)) == 1)
        }
    }

    @Test("edshim udp-proxy refuses bad flags before binding, saying which, also as 1\\n<reason> on fd 3 when started as dockerd starts a proxy", arguments: [
        (["-host-ip", "nowhere", "-host-port", "PORT", "-container-ip", "127.0.0.1", "-container-port", "53"], "-host-ip \"nowhere\" is not an IPv4 or IPv6 address"),
        (["-host-ip", "0.0.0.0", "-host-port", "PORT", "-container-ip", "127.0.0.1"], "Missing expected argument '-container-port <container-port>'"),
        (["-host-ip", "0.0.0.0", "-host-port", "PORT", "-container-ip", "127.0.0.1", "-container-port", "53", "--max-flows", "0"],
         "invalid value \"0\" for --max-flows: give a whole number of flows between 1 and 1048576"),
        (["-host-ip", "0.0.0.0", "-host-port", "PORT", "-container-ip", "127.0.0.1", "-container-port", "53", "--idle-timeout", "forever"],
         "invalid value \"forever\" for --idle-timeout"),
        // A value that begins with a dash is the option's value, not another option.
        (["-host-ip", "0.0.0.0", "-host-port", "PORT", "-container-ip", "127.0.0.1", "-container-port", "53", "--idle-timeout", "-1"],
         "invalid value \"-1\" for --idle-timeout"),
        (["-proto", "sctp", "-host-ip", "0.0.0.0", "-host-port", "PORT", "-container-ip", "127.0.0.1", "-container-port", "53"],
         "edshim does not proxy SCTP"),
    ])
    func badFlags(arguments: [String], reason: String) async throws {
        // The port is taken (by a socket the kernel gave a free port: a port picked
        // first could be taken by another test before it is bound): the flag must be
        // refused before any bind is tried.
        let taken = try UDPTestClient(.ipv4, bindTo: .anyIPv4)
        defer { withExtendedLifetime(taken) {} }
        let port = try #require(taken.local?.port)
        let line = ["udp-proxy"] + arguments.map { $0 == "PORT" ? String(port) : $0 }
        let result = try await Binaries.run(try Binaries.edshim(), line, in: NSTemporaryDirectory())
        #expect(result.status == 64, "output: \(result.output)")
        #expect(result.output.contains(reason), "output: \(result.output)")

        let pipe = try Sockets.pipe()
        defer { close(pipe.read) }
        let process: ChildProcess
        do {
            process = try ChildProcess.spawn(try Binaries.edshim(), line, descriptors: [3: pipe.write], logPath: "/dev/null")
        } catch {
            close(pipe.write)
            throw error
        }
        close(pipe.write)
        let status = await Sockets.readStatus(pipe.read)
        #expect(status.hasPrefix("1\n") && status.contains(reason), "fd 3: \(status.debugDescription)")
        #expect(await process.waitForExit(timeout: .seconds(5)) == 64)
    }

    @Test("a UDP shim's command line, copied from ps (dockerd 20.10's, or 28's with -use-listen-fd), runs as edshim udp-proxy; -proto tcp there is refused", arguments: [false, true])
    func shimCommandLine(fromDockerd28: Bool) async throws {
        try await withUDPTestbed { bed, echoes in
            let echo = try echoes.start(on: .loopbackIPv4)
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freeUDPPort())
            let shimLine = ShimArguments(proto: .udp, host: host, container: echo.endpoint).commandLine + (fromDockerd28 ? ["-use-listen-fd"] : [])
            #expect(shimLine.prefix(2) == ["-proto", "udp"])
            let proxy = try await bed.spawnShim(["udp-proxy"] + shimLine, host: host)
            #expect(proxy.isReady, "status: \(proxy.status) \(proxy.process.log)")
            let client = try UDPTestClient(.ipv4)
            let reply = try await onThread { try client.exchange(Array("from ps".utf8), with: SocketEndpoint(ip: .loopbackIPv4, port: host.port)) }
            #expect(reply == Array("from ps".utf8))

            let tcp = ShimArguments(proto: .tcp, host: host, container: echo.endpoint).commandLine
            let refused = try await Binaries.run(try Binaries.edshim(), ["udp-proxy"] + tcp, in: NSTemporaryDirectory())
            #expect(refused.status == 64)
            #expect(refused.output.contains("udp-proxy proxies UDP only, not -proto tcp"), "\(refused.output)")
        }
    }

    @Test("a flag wins over its variable, which is then not read at all")
    func flagOverridesVariable() async throws {
        let result = try await Binaries.run(
            try Binaries.edshim(),
            ["udp-proxy", "-host-ip", "0.0.0.0", "-host-port", "5353", "-container-ip", "127.0.0.1", "-container-port", "53", "--max-flows", "0"],
            environment: [UDPProxyOptions.maxFlowsEnvironmentVariable: "zz"], in: NSTemporaryDirectory()
        )
        #expect(result.status != 0)
        #expect(result.output.contains("--max-flows"), "\(result.output)")
        #expect(!result.output.contains(UDPProxyOptions.maxFlowsEnvironmentVariable), "the overridden variable was read: \(result.output)")
    }

    @Test("edshim udp-proxy --help (or -h, -help) teaches the flags and the environment", arguments: ["--help", "-h", "-help"])
    func help(flag: String) async throws {
        let result = try await Binaries.run(try Binaries.edshim(), ["udp-proxy", flag], in: NSTemporaryDirectory())
        #expect(result.status == 0, "\(result.output)")
        for needle in ["-host-ip", "--idle-timeout", "--max-flows", "--busy-poll", UDPProxyOptions.idleTimeoutEnvironmentVariable, UDPProxyOptions.maxFlowsEnvironmentVariable, UDPProxyOptions.busyPollEnvironmentVariable] {
            #expect(result.output.contains(needle), "--help does not mention \(needle)")
        }
    }
}
