import EdshimCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A private containerd and dockerd for one test (or one suite), with edshim as the
/// userland proxy: everything under one temporary directory, on a bridge of its own,
/// in a cgroup of its own, so that it neither sees nor disturbs any other Docker on the
/// machine (a system dockerd, docker0, other fixtures running in parallel).
///
/// `start` brings it up and imports `BusyboxImage.name`; `stop` (idempotent) removes
/// every container, stops both daemons and removes every trace. When the machine
/// refuses to run it, `start` throws `DockerUnavailable`.
final class DockerDaemon: @unchecked Sendable {
    /// The private directory, `/tmp/edshim-docker-XXXXXX`.
    let directory: String
    /// dockerd's API socket; `host` is the `DOCKER_HOST` form, `unix://…`.
    let socketPath: String
    var host: String { "unix://" + socketPath }
    let containerdSocket: String
    /// The userland proxy dockerd runs, and the edshim server socket it is told about.
    let edshim: String
    let edshimSocket: String
    /// Added to dockerd's environment, which it hands to the proxies it starts.
    private(set) var environment: [String: String]
    /// The containers' network: `bridge.gateway` is the host's address on it, from
    /// which Envoy's connections to the containers come.
    let bridge: PrivateBridge
    let tools: DockerTools
    /// dockerd's version, e.g. `20.10.24+dfsg1`.
    private(set) var version = ""

    private var containerd: ChildProcess?
    private var dockerd: ChildProcess?
    /// The proxies of the dockerd `stopDockerd` stopped: with
    /// EDSHIM_DOCKERD_RESTART_GRACE they outlive it, and teardown ends those left.
    private var formerProxies: [(pid: pid_t, argv: [String])] = []
    private let lock = NSLock()
    private var stopping: Task<Void, Never>?

    private static let reapLock = NSLock()
    nonisolated(unsafe) private static var reaped = false

    private init(directory: String, bridge: PrivateBridge, tools: DockerTools, edshim: String, edshimSocket: String, environment: [String: String]) {
        self.directory = directory
        self.socketPath = directory + "/docker.sock"
        self.containerdSocket = directory + "/containerd.sock"
        self.bridge = bridge
        self.tools = tools
        self.edshim = edshim
        self.edshimSocket = edshimSocket
        self.environment = environment
    }

    /// Starts containerd and dockerd, waits until dockerd answers, imports the busybox
    /// image and runs one container (no ports) to prove containers run here. Leaves
    /// nothing behind when it throws.
    static func start(edshim: String, socket edshimSocket: String, environment: [String: String] = [:]) async throws -> DockerDaemon {
        guard getuid() == 0 else { throw DockerUnavailable(reason: "dockerd needs root privileges; running as uid \(getuid())") }
        let tools = try DockerTools.find()
        if reapLock.withLock({ () -> Bool in defer { reaped = true }; return !reaped }) {
            await DockerLeftovers.reapStale(ip: tools.ip)
        }
        let directory = try ScratchDirectory.make(DockerLeftovers.directoryPrefix)
        let bridge: PrivateBridge
        do {
            try DockerLeftovers.recordOwner(of: directory, bridge: nil)
            bridge = try await PrivateBridge.create(ip: tools.ip, in: directory)
            try DockerLeftovers.recordOwner(of: directory, bridge: bridge.name)
        } catch {
            _ = await DockerLeftovers.sweep(directory: directory, bridge: nil, ip: tools.ip)
            throw error
        }
        let daemon = DockerDaemon(directory: directory, bridge: bridge, tools: tools, edshim: edshim, edshimSocket: edshimSocket, environment: environment)
        do {
            try await daemon.startContainerd()
            try await daemon.startDockerd()
            try await BusyboxImage.build(in: directory, tar: tools.tar) { try await daemon.run($0) }
            let probe = try await daemon.result(["run", "--rm", BusyboxImage.name, "true"])
            guard probe.succeeded else {
                throw DockerUnavailable.classify("running a container", detail: probe.stderr.trimmingCharacters(in: .whitespacesAndNewlines), context: daemon.logTail())
            }
        } catch {
            await daemon.stop()
            throw error
        }
        return daemon
    }

    // MARK: The docker CLI

    /// Runs the docker CLI against this daemon; returns stdout without its trailing
    /// newline; a non-zero exit throws with stderr.
    @discardableResult
    func run(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> String {
        let result = try await result(arguments, timeout: timeout)
        guard result.succeeded else {
            throw TestFailure("docker \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return result.stdout.trimmingCharacters(in: .newlines)
    }

    /// Runs the docker CLI and returns status, stdout and stderr, whatever the status.
    func result(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> CommandResult {
        try await CapturedCommand.run(tools.docker, arguments, environment: cliEnvironment, in: directory, timeout: timeout)
    }

    /// `DOCKER_HOST` and a private `DOCKER_CONFIG`, for any docker client a test runs.
    var cliEnvironment: [String: String] { ["DOCKER_HOST": host, "DOCKER_CONFIG": directory + "/cli"] }

    /// The container's address on the fixture's bridge.
    func containerIP(_ container: String) async throws -> String {
        let address = try await run(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container])
        guard !address.isEmpty else { throw TestFailure("container \(container) has no IP address (not running?)") }
        return address
    }

    /// The process id of a running container's init, in whose network namespace a
    /// test can serve what the busybox image cannot (a UDP echo).
    func containerPID(_ container: String) async throws -> pid_t {
        let text = try await run(["inspect", "-f", "{{.State.Pid}}", container])
        guard let pid = pid_t(text), pid > 0 else { throw TestFailure("docker inspect gave \(container) the pid \(text.debugDescription)") }
        return pid
    }

    /// Waits until the container accepts TCP connections on `port` at its own address
    /// (straight over the bridge, not through Envoy). dockerd 20.10 starts the proxies
    /// before the container's process, so `docker run -d` can return — with the host
    /// port already served by Envoy — a moment before the server inside listens.
    func waitForContainerPort(_ container: String, port: UInt16, timeout: Duration = .seconds(10)) async throws {
        let address = try await containerIP(container)
        guard let ip = IPAddress(address) else { throw TestFailure("container \(container) has address \(address.debugDescription)") }
        let endpoint = SocketEndpoint(ip: ip, port: port)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let fd = try? Sockets.connect(endpoint, timeoutSeconds: 1) {
                close(fd)
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("container \(container) does not listen on \(endpoint) after \(timeout)")
    }

    /// Removes every container of this daemon (all of them are the tests').
    func removeAllContainers() async throws {
        let ids = try await run(["ps", "-aq"]).split(separator: "\n").map(String.init)
        if !ids.isEmpty { try await run(["rm", "-f", "-v"] + ids) }
    }

    /// The userland proxies dockerd runs now: process id and command line (argv[0] first).
    func proxyProcesses() -> [(pid: pid_t, argv: [String])] {
        guard let dockerd, !dockerd.hasExited else { return [] }
        return DockerLeftovers.children(of: dockerd.pid)
    }

    /// The command lines of the userland proxies dockerd runs now.
    func proxies() -> [[String]] { proxyProcesses().map(\.argv) }

    /// The last lines of both daemons' logs, for failure messages.
    func logTail(lines: Int = 60) -> String {
        ["dockerd", "containerd"].map { name in
            let log = (try? String(contentsOfFile: "\(directory)/\(name).log", encoding: .utf8)) ?? "(no log)"
            return "--- \(name) log (last \(lines) lines) ---\n" + log.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Turns on live restore the way an operator does: `"live-restore": true` in
    /// daemon.json, then SIGHUP; returns once dockerd reports it enabled.
    func enableLiveRestore() async throws {
        guard let dockerd else { throw TestFailure("dockerd is not running") }
        try "{\"live-restore\": true}\n".write(toFile: directory + "/daemon.json", atomically: true, encoding: .utf8)
        kill(dockerd.pid, SIGHUP)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try await run(["info", "--format", "{{.LiveRestoreEnabled}}"]) == "true" { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("dockerd did not enable live restore after SIGHUP\n\(logTail())")
    }

    /// Stops dockerd with `signal` (SIGTERM, as systemd does; SIGKILL for a crash) and
    /// waits for it to exit; containerd keeps running, as it does under systemd.
    func stopDockerd(signal: Int32 = SIGTERM) async throws {
        guard let dockerd else { throw TestFailure("dockerd is not running") }
        let proxies = DockerLeftovers.children(of: dockerd.pid)
        lock.withLock { formerProxies += proxies }
        dockerd.signal(signal)
        guard await dockerd.waitForExit(timeout: .seconds(20)) != nil else {
            throw TestFailure("dockerd did not exit within 20 s of signal \(signal)\n\(logTail())")
        }
    }

    /// Starts dockerd again after `stopDockerd`, with the same directories and
    /// daemon.json; with `environment` in place of the one it had, when given.
    func startDockerdAgain(environment: [String: String]? = nil) async throws {
        guard dockerd?.hasExited ?? true else { throw TestFailure("dockerd is still running") }
        if let environment { self.environment = environment }
        try await startDockerd()
    }

    // MARK: Starting

    private func startContainerd() async throws {
        let config = """
            version = 2
            root = "\(directory)/containerd/root"
            state = "\(directory)/containerd/state"
            # dockerd needs none of these; the opt plugin would otherwise create /opt/containerd.
            disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
              "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
              "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
            [grpc]
              address = "\(containerdSocket)"
            [debug]
              address = ""
            [metrics]
              address = ""

            """
        try config.write(toFile: directory + "/containerd.toml", atomically: true, encoding: .utf8)
        let process = try ChildProcess.spawn(
            tools.containerd,
            ["--config", directory + "/containerd.toml", "--address", containerdSocket,
             "--root", directory + "/containerd/root", "--state", directory + "/containerd/state",
             "--log-level", "warn"],
            environment: ["PATH": tools.daemonPath],
            logPath: directory + "/containerd.log"
        )
        containerd = process
        try await waitUntilReady(process, "containerd", within: 20, every: .milliseconds(20), "did not open \(containerdSocket)") {
            FileManager.default.fileExists(atPath: containerdSocket)
        }
    }

    private func startDockerd() async throws {
        if !FileManager.default.fileExists(atPath: directory + "/daemon.json") {
            try "{}\n".write(toFile: directory + "/daemon.json", atomically: true, encoding: .utf8)
        }
        let process = try ChildProcess.spawn(
            tools.dockerd,
            [
                "--config-file", directory + "/daemon.json",
                "--data-root", directory + "/data",
                "--exec-root", directory + "/exec",
                "--pidfile", directory + "/docker.pid",
                "-H", host,
                "--containerd", containerdSocket,
                "--storage-driver=vfs",
                "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
                "--userland-proxy=true", "--userland-proxy-path=\(edshim)",
                "--bridge=\(bridge.name)",
                // Containers in a cgroup of the fixture's own, which teardown can empty and remove.
                "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent=/\(bridge.name)",
                "--shutdown-timeout=3",
            ],
            // dockerd hands its environment to the proxies it starts.
            environment: environment.merging(["PATH": tools.daemonPath, "EDSHIM_SOCKET": edshimSocket]) { $1 },
            logPath: directory + "/dockerd.log"
        )
        dockerd = process
        try await waitUntilReady(process, "dockerd", within: 30, every: .milliseconds(50), "did not answer on \(socketPath)") {
            guard FileManager.default.fileExists(atPath: socketPath),
                  let answer = try? await result(["version", "--format", "{{.Server.Version}}"], timeout: .seconds(10)), answer.succeeded else { return false }
            version = answer.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            return true
        }
    }

    /// Waits until `ready` holds for a daemon just started; one that exits first is
    /// classified (`DockerUnavailable`) from its log.
    private func waitUntilReady(
        _ process: ChildProcess, _ name: String, within seconds: Int, every interval: Duration,
        _ notReady: String, ready: () async -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if let status = process.poll() {
                throw DockerUnavailable.classify("\(name) exited \(status)", detail: DockerUnavailable.reason(inLog: process.log), context: logTail())
            }
            if await ready() { return }
            try await Task.sleep(for: interval)
        }
        throw TestFailure("\(name) \(notReady) in \(seconds) s\n\(logTail())")
    }

    // MARK: Stopping

    /// Removes every container, stops dockerd (SIGTERM, then SIGKILL) and containerd,
    /// kills what is left of the fixture's processes, unmounts what is left under its
    /// directory, deletes its bridge and cgroup and removes the directory. Safe to call
    /// more than once, and from a failed `start`.
    func stop() async {
        let task = lock.withLock { () -> Task<Void, Never> in
            if let stopping { return stopping }
            let task = Task { await self.performStop() }
            stopping = task
            return task
        }
        await task.value
    }

    private func performStop() async {
        if let dockerd, !dockerd.hasExited {
            try? await removeAllContainers()
        }
        // The proxies dockerd runs get SIGTERM from it when it dies (Pdeathsig); any
        // still running after that is killed here, after checking it is the same process.
        let proxies = (dockerd.map { DockerLeftovers.children(of: $0.pid) } ?? []) + lock.withLock { formerProxies }
        if let dockerd { await DockerDaemon.terminate(dockerd, grace: .seconds(15)) }
        if let containerd { await DockerDaemon.terminate(containerd, grace: .seconds(10)) }
        for proxy in proxies where ProcessTable.commandLine(of: proxy.pid) == proxy.argv {
            FileHandle.standardError.write(Data("docker fixture: killing proxy \(proxy.pid) still running after dockerd stopped: \(proxy.argv)\n".utf8))
            kill(proxy.pid, SIGKILL)
        }
        let problems = await DockerLeftovers.sweep(directory: directory, bridge: bridge.name, ip: tools.ip)
        if !problems.isEmpty {
            FileHandle.standardError.write(Data("docker fixture: teardown of \(directory) incomplete: \(problems.joined(separator: "; "))\n".utf8))
        }
    }

    private static func terminate(_ process: ChildProcess, grace: Duration) async {
        guard process.poll() == nil else { return }
        kill(process.pid, SIGTERM)
        if await process.waitForExit(timeout: grace) == nil {
            kill(process.pid, SIGKILL)
            _ = await process.waitForExit(timeout: .seconds(5))
        }
    }
}
