import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `make demo` (scripts/demo.sh, run with DEMO_ONCE=1 so that it tears down right
/// after showing everything) does what README.md promises a newcomer, and leaves
/// nothing behind. One demo at a time, so that each run's leftovers are its own.
@Suite("make demo", .serialized)
struct DemoScriptTests {
    @Test("as root: dockerd publishes a labelled container's port through two shims, Envoy answers, the cluster is named from the labels; a UDP port answers through edshim; nothing is left")
    func withPrivateDockerd() async throws {
        guard getuid() == 0 else {
            try DockerUnavailable(reason: "the demo's private dockerd needs root; running as uid \(getuid())").skip()
        }
        let demo = try await DemoRun.start([:])
        #expect(demo.output.contains("x-envoy-upstream-service-time: "), "\(demo.output)")
        demo.expectEnvoyTookEveryUpdate()
        #expect(demo.output.contains("hello from a Docker container, through Envoy"))
        #expect(!(demo.output + demo.errors).contains("WARNING: IPv4 forwarding is disabled"), "docker run's warning, which does not apply, is left out: \(demo.errors)")
        let shims = demo.output.split(separator: "\n").filter { $0.contains(" -proto tcp -host-ip ") && $0.contains(" -container-port 80") }
        #expect(shims.count == 2, "one shim per address family, started by dockerd: \(shims)")
        #expect(demo.output.range(of: #"cluster: +hello-demo-\d+::10\.\d+\.\d+\.\d+:80::"#, options: .regularExpression) != nil)
        #expect(demo.output.range(of: #"access log \(Envoy's stdout\): \{.*"service":"hello-demo-\d+".*"status":200"#, options: .regularExpression) != nil)

        // The UDP port: two edshim UDP proxies from dockerd, a datagram relayed to the
        // container (which sees it from the bridge's gateway, as with docker-proxy) and
        // back, and both listed by `edshim status`.
        let udpShims = demo.output.split(separator: "\n").filter { $0.contains(" -proto udp -host-ip ") && $0.contains(" -container-port 5353") }
        #expect(udpShims.count == 2, "one UDP proxy per address family, started by dockerd: \(udpShims)")
        let gateway = try #require(demo.output.firstMatch(of: /bridge edsdemo[0-9a-f]{4} \(([0-9.]+)\/24\)/)?.1, "the demo names its gateway")
        #expect(demo.output.contains("the container got 'hello over UDP' from \(gateway):"), "\(demo.output)")
        #expect(demo.statusRows(udpPort: try demo.udpHostPort()).count == 2, "\(demo.output)")
        // status asked the demo's dockerd (DOCKER_HOST) for the ports it publishes:
        // every one has its proxy.
        #expect(!demo.output.contains("could not be asked") && !demo.output.contains("no-proxy"), "\(demo.output)")
        #expect(demo.output.contains(" DOCKER_HOST=unix://") && demo.output.contains("/edshim status"), "the status command to try names the demo's dockerd: \(demo.output)")

        let bridge = try #require(demo.output.firstMatch(of: /bridge (edsdemo[0-9a-f]{4})/)?.1, "the demo names its bridge")
        #expect(!FileManager.default.fileExists(atPath: "/sys/class/net/\(bridge)"), "bridge \(bridge) removed")
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\(bridge)"), "cgroup /\(bridge) removed")
    }

    @Test("DEMO_DOCKER=0: edshim started as dockerd starts it says 0 on fd 3, Envoy answers, a UDP shim relays a datagram; nothing is left")
    func withStandIn() async throws {
        let demo = try await DemoRun.start(["DEMO_DOCKER": "0"])
        #expect(demo.output.contains("fd 3 said: 0 (served)"), "\(demo.output)")
        demo.expectEnvoyTookEveryUpdate()
        #expect(demo.output.contains("x-envoy-upstream-service-time: "))
        #expect(demo.output.contains("hello from the container behind Envoy"))
        #expect(demo.output.range(of: #"cluster: +unknown-\d+::127\.0\.0\.1:\d+::"#, options: .regularExpression) != nil)
        #expect(demo.output.range(of: #"access log \(Envoy's stdout\): \{.*"service":"unknown-\d+".*"status":200"#, options: .regularExpression) != nil)
        #expect(demo.output.contains("fd 3 said: 0 (receiving)"), "the UDP shim reported on fd 3: \(demo.output)")
        #expect(demo.output.contains("the container got 'hello over UDP' from 127.0.0.1:"))
        #expect(demo.statusRows(udpPort: try demo.udpHostPort()).count == 1, "\(demo.output)")
    }

    @Test("without root (as nobody, when the tests run as root): the server, Envoy and the shims run unprivileged, and Envoy answers on the published port")
    func withoutRoot() async throws {
        // Not root already: the demo runs as this user, which is the case to show.
        let demo = try await DemoRun.start([:], asNobody: getuid() == 0)
        #expect(demo.output.contains("demo: not root") || demo.errors.contains("demo: not root"), "\(demo.errors)")
        // Not `sudo make demo`, which would build as root with no swift on sudo's PATH.
        #expect(demo.errors.contains("sudo env PATH=") && demo.errors.contains("scripts/demo.sh"), "\(demo.errors)")
        #expect(demo.output.contains("fd 3 said: 0 (served)"), "\(demo.output)")
        #expect(demo.output.contains("x-envoy-upstream-service-time: "), "the shim registered with the unprivileged server: \(demo.output)")
        #expect(demo.output.contains("hello from the container behind Envoy"))
        #expect(demo.output.contains("the container got 'hello over UDP' from 127.0.0.1:"))
        demo.expectEnvoyTookEveryUpdate()
    }

    @Test("a demo whose output stops being read (make demo | head) tears down all the same: its server, Envoy and directory go")
    func outputNoLongerRead() async throws {
        let scratch = try ScratchDirectory.make("/tmp/edshim-test-demo-")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let earlier = DemoLeftovers.directories()
        let demo = Binaries.packageRoot + "/scripts/demo.sh"
        let variables = [
            "EDSHIM_BIN": try Binaries.edshim(), "ENVOY_BIN": try Binaries.envoy(), "DEMO_ONCE": "1", "DEMO_DOCKER": "0",
            "DEMO_PORT": String(try Sockets.freePort()), "DEMO_UDP_PORT": String(try Sockets.freePort()),
            "DEMO_ADMIN_PORT": String(try Sockets.freePort()),
        ]
        // The pipeline ends once the demo has: its teardown is over by then.
        let result = try await CapturedCommand.run("/bin/bash", ["-c", "\"$0\" | head -n 2", demo], environment: variables, in: scratch, timeout: .seconds(60))
        let directory = result.stdout.firstMatch(of: /socket (\/tmp\/edshim-demo-[A-Za-z0-9]{6})\//)?.1
        #expect(directory != nil, "the demo's first lines name its directory: \(result.stdout)")
        let left = DemoLeftovers.directories().subtracting(earlier)
        #expect(left.isEmpty, "left behind: \(left)")
        if let directory { #expect(DockerLeftovers.processesNaming(String(directory)).isEmpty, "no process of the demo left") }
        await DemoLeftovers.sweep(except: earlier)
    }
}

/// One run of scripts/demo.sh to its end, checked for a clean exit and a clean
/// teardown: its directory is gone and no process names it.
private struct DemoRun {
    let output: String
    let errors: String

    /// Envoy took every change the demo's server made: the demo's line of Envoy's
    /// four counters (lds and cds, update_rejected and update_failure) sums to 0.
    func expectEnvoyTookEveryUpdate(sourceLocation: SourceLocation = #_sourceLocation) {
        let line = output.split(separator: "\n").first { $0.contains("updates rejected or failed:") } ?? ""
        #expect(line.contains("updates rejected or failed: 0 ("), "\(output)", sourceLocation: sourceLocation)
        #expect(line.matches(of: /\.update_(rejected|failure): 0/).count == 4, "all four counters shown: \(line)", sourceLocation: sourceLocation)
    }

    /// The host port of the demo's UDP proxies, from their command line.
    func udpHostPort() throws -> Substring {
        try #require(output.firstMatch(of: /-proto udp -host-ip \S+ -host-port (\d+)\s/)?.1, "the demo shows its UDP proxy")
    }

    /// The `edshim status` rows of that UDP port (other tests' UDP proxies, running
    /// meanwhile on this host, are listed too).
    func statusRows(udpPort: Substring) -> [Substring] {
        output.split(separator: "\n").filter { $0.contains(":\(udpPort) ") && $0.contains(" udp ") && $0.contains("udp-proxy") }
    }

    /// Runs the demo; `asNobody`: as user and group 65534 with no other groups
    /// (setpriv), from a directory that user can enter.
    static func start(_ environment: [String: String], asNobody: Bool = false) async throws -> DemoRun {
        let scratch = try ScratchDirectory.make("/tmp/edshim-test-demo-")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        if asNobody { chmod(scratch, 0o777) }
        // Host ports from the tests' own reservation, below the ephemeral range, where
        // the parallel tests' sockets cannot take them before the demo binds them.
        var variables = [
            "EDSHIM_BIN": try Binaries.edshim(), "ENVOY_BIN": try Binaries.envoy(), "DEMO_ONCE": "1",
            "DEMO_PORT": String(try Sockets.freePort()), "DEMO_UDP_PORT": String(try Sockets.freePort()),
            "DEMO_ADMIN_PORT": String(try Sockets.freePort()),
        ]
        variables.merge(environment) { $1 }
        let earlier = DemoLeftovers.directories()
        let checked: Result<DemoRun, any Error>
        do {
            let demo = Binaries.packageRoot + "/scripts/demo.sh"
            let (executable, arguments) = asNobody
                ? (try SystemExecutables.setpriv(), ["--reuid=65534", "--regid=65534", "--clear-groups", demo])
                : (demo, [])
            let result = try await CapturedCommand.run(executable, arguments, environment: variables, in: scratch, timeout: .seconds(180))
            try checkTeardown(result)
            checked = .success(DemoRun(output: result.stdout, errors: result.stderr))
        } catch {
            checked = .failure(error)
        }
        // Whatever went wrong above, nothing stays behind.
        await DemoLeftovers.sweep(except: earlier)
        return try checked.get()
    }

    private static func checkTeardown(_ result: CommandResult) throws {
        #expect(result.status == 0, "demo exited \(result.status): \(result.stderr)\n\(result.stdout)")
        #expect(result.stdout.hasSuffix("== done\n"), "the demo tore down: \(result.stdout.suffix(300))")

        let directory = try #require(result.stdout.firstMatch(of: /socket (\/tmp\/edshim-demo-[A-Za-z0-9]{6})\//)?.1, "the demo names its directory")
        #expect(!FileManager.default.fileExists(atPath: String(directory)), "\(directory) removed")
        #expect(DockerLeftovers.processesNaming(String(directory)).isEmpty, "no process of the demo left")
    }
}

/// What a demo that did not tear down (it timed out, or its teardown broke) left in
/// its `/tmp/edshim-demo-*` directory, removed as a Docker fixture's leftovers are —
/// and the shims that name it only in their environment (EDSHIM_SOCKET), which the
/// demo starts as dockerd does, with no directory on their command line.
private enum DemoLeftovers {
    static func directories() -> Set<String> {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        return Set(entries.filter { $0.hasPrefix("edshim-demo-") }.map { "/tmp/" + $0 })
    }

    static func sweep(except earlier: Set<String>) async {
        guard let ip = try? DockerTools.find().ip else { return }
        for directory in directories().subtracting(earlier) {
            var victims = DockerLeftovers.processesNaming(directory)
            var bridge: String?
            for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap({ pid_t($0) }) ?? [] {
                if ShimProcesses.environmentValue("EDSHIM_SOCKET", of: pid)?.hasPrefix(directory + "/") == true { victims.insert(pid) }
                if victims.contains(pid), let flag = ProcessTable.commandLine(of: pid)?.first(where: { $0.hasPrefix("--bridge=") }) {
                    bridge = String(flag.dropFirst("--bridge=".count))
                }
            }
            for pid in victims where pid != getpid() { kill(pid, SIGKILL) }
            let problems = await DockerLeftovers.sweep(directory: directory, bridge: bridge, ip: ip)
            FileHandle.standardError.write(Data("make demo test: swept \(directory)\(problems.isEmpty ? "" : ", but: \(problems.joined(separator: "; "))")\n".utf8))
        }
    }
}
