import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// How the shim is started.
enum SpawnStyle: String, CaseIterable, Sendable, CustomStringConvertible {
    /// dockerd 20.10: fd 3 status pipe; the proxy binds the port itself.
    case dockerd2010
    /// dockerd ≥ 28: fd 3 status pipe, the bound listening socket on fd 4 and
    /// `-use-listen-fd`; dockerd keeps its copy until the proxy reports.
    case dockerd28

    var description: String { rawValue }
}

/// A shim the test started, with what it reported on fd 3.
struct ShimRun {
    let process: ChildProcess
    let status: String
    var isReady: Bool { status == "0\n" }
}

/// A private edshim server and Envoy in a temporary directory, for one test.
final class Testbed: @unchecked Sendable {
    struct Options {
        var defaultMode = "http"
        var readyTimeoutSeconds = 5.0
        var startEnvoy = true
        var startServer = true
        var serverArguments: [String] = []
        /// Added to the server's environment.
        var serverEnvironment: [String: String] = [:]
        /// The socket's path inside the testbed directory.
        var socketName = "edshim.sock"
        /// The server's `--envoy-drain-time`: 0 removes a cluster no listener uses at
        /// once, which most tests check for (the testbed's Envoy drains for 2 s).
        var envoyDrainTimeSeconds = 0.0
        /// The server is told its socket with `--socket`; false: with `EDSHIM_SOCKET`.
        var socketFlag = true
        /// The server gets its paths and admin address only, every other flag at its
        /// default (the fields above that set flags are then ignored).
        var serverDefaults = false
        /// Added to the environment of a private dockerd (`withDockerTestbed`), which
        /// hands it to the shims it starts.
        var dockerdEnvironment: [String: String] = [:]

        /// A command the server is started through, which must exec it (the server's
        /// path and arguments follow): a seccomp filter, say.
        var serverLauncher: [String] = []

        /// A testbed whose server and Envoy a test starts itself, or never.
        static let neitherServerNorEnvoy = Options(startEnvoy: false, startServer: false)
    }

    let directory: String
    let socketPath: String
    let xdsDirectory: String
    let envoyAdmin: SocketEndpoint
    /// The server's own admin endpoint.
    let serverAdmin: SocketEndpoint
    let edshim: String
    private(set) var server: ChildProcess?
    private(set) var envoy: ChildProcess?
    private let lock = NSLock()
    private var shims: [ChildProcess] = []
    private var backends: [LoopbackBackend] = []
    private let options: Options

    private init(options: Options) throws {
        self.options = options
        // What can fail first; the directory last, so that a failure leaves none.
        envoyAdmin = SocketEndpoint(ip: .loopbackIPv4, port: try Sockets.freePort())
        serverAdmin = SocketEndpoint(ip: .loopbackIPv4, port: try Sockets.freePort())
        edshim = try Binaries.edshim()
        directory = try ScratchDirectory.make("/tmp/edshim-test-")
        socketPath = directory + "/" + options.socketName
        xdsDirectory = directory + "/xds"
    }

    /// Starts a server (and Envoy, unless told not to), waits until both serve.
    static func start(_ options: Options = Options()) async throws -> Testbed {
        let bed = try Testbed(options: options)
        do {
            if options.startServer { try await bed.startServer() }
            if options.startEnvoy { try await bed.startEnvoy() }
        } catch {
            await bed.teardown()
            throw error
        }
        return bed
    }

    var environment: [String: String] { ["EDSHIM_SOCKET": socketPath] }

    /// Starts the server (through `launcher` when given, else the options' launcher)
    /// and returns once its socket answers.
    func startServer(extraArguments: [String] = [], extraEnvironment: [String: String] = [:], launcher: [String]? = nil) async throws {
        let socketArguments = options.socketFlag ? ["--socket", socketPath] : []
        var environment = options.serverEnvironment.merging(extraEnvironment) { $1 }
        if !options.socketFlag { environment["EDSHIM_SOCKET"] = socketPath }
        let paths = ["--xds-dir", xdsDirectory, "--state-file", stateFile, "--admin-address", serverAdmin.description]
        let tuning = options.serverDefaults ? [] : [
            "--default-mode", options.defaultMode,
            "--ready-timeout", String(options.readyTimeoutSeconds),
            "--envoy-drain-time", String(options.envoyDrainTimeSeconds),
            "--log-level", "debug",
        ]
        let arguments = ["server"] + socketArguments + paths + tuning + options.serverArguments + extraArguments
        let serverLauncher = launcher ?? options.serverLauncher
        let command = serverLauncher + [edshim] + arguments
        server = try ChildProcess.spawn(command[0], Array(command.dropFirst()), environment: environment, logPath: serverLogPath)
        let client = ServerClient(socketPath: socketPath)
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if (try? client.exchange(.list, deadline: .after(milliseconds: 1000))) != nil { return }
            if server?.hasExited == true { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("edshim server did not come up:\n\(server?.log ?? "")")
    }

    func stopServer() async {
        await server?.stop()
    }

    /// Stops the server and starts it again without its state file and the xDS files,
    /// as after a lost /var/lib/edshim (the xds directory itself stays: Envoy watches
    /// it, and would not follow a new one). Returns once Envoy has dropped every listener.
    func restartServerWithoutState(extraArguments: [String] = []) async throws {
        try await stopServerAndForgetState()
        try await startServer(extraArguments: extraArguments)
        try await eventually("the restarted server published nothing, and Envoy dropped every listener") {
            try listeners().isEmpty
        }
    }

    /// Stops the server and deletes its state file and the xDS files (not the xds
    /// directory: Envoy watches it).
    func stopServerAndForgetState() async throws {
        await stopServer()
        for name in try FileManager.default.contentsOfDirectory(atPath: xdsDirectory) {
            try FileManager.default.removeItem(atPath: xdsDirectory + "/" + name)
        }
        try? FileManager.default.removeItem(atPath: stateFile)
    }

    /// SIGKILL: the server gets no chance to clean up.
    func killServer() async {
        server?.signal(SIGKILL)
        _ = await server?.waitForExit(timeout: .seconds(5))
    }

    /// SIGKILL Envoy and start it again with the same bootstrap and admin port. What
    /// this Envoy was given is checked first: the next one's counters start at 0.
    func restartEnvoy() async throws {
        try await expectEnvoyTookEveryUpdate()
        envoy?.signal(SIGKILL)
        _ = await envoy?.waitForExit(timeout: .seconds(5))
        try await startEnvoy()
    }

    /// The server's state file.
    var stateFile: String { directory + "/state.json" }

    /// Where the server's stdout and stderr go.
    var serverLogPath: String { directory + "/server.log" }

    func startEnvoy() async throws {
        envoyStoppedByTheTest = false
        let bootstrap = try await Binaries.run(edshim, ["bootstrap", "--xds-dir", xdsDirectory, "--admin-address", envoyAdmin.description], in: directory)
        guard bootstrap.status == 0 else { throw TestFailure("edshim bootstrap failed: \(bootstrap.output)") }
        let path = directory + "/envoy.yaml"
        try bootstrap.output.write(toFile: path, atomically: true, encoding: .utf8)
        envoy = try ChildProcess.spawn(
            try Binaries.envoy(),
            // Access log lines reach envoy.log within 0.1 s (Envoy's default: every 10 s).
            ["-c", path, "--disable-hot-restart", "--concurrency", "1", "-l", "warning", "--drain-time-s", "2", "--file-flush-interval-msec", "100"],
            logPath: directory + "/envoy.log"
        )
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let response = try? TestHTTP.get(envoyAdmin, path: "/ready"), response.status == 200 { return }
            if envoy?.hasExited == true { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("Envoy did not become ready:\n\(envoy?.log ?? "")")
    }

    /// Everything this testbed started ends; its directory goes.
    func teardown() async {
        let (shims, backends) = lock.withLock { (self.shims, self.backends) }
        for shim in shims { shim.signal(SIGKILL) }
        for shim in shims { _ = await shim.waitForExit(timeout: .seconds(5)) }
        await server?.stop()
        await envoy?.stop()
        for backend in backends { backend.stop() }
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: Backends

    func httpBackend(_ name: String, on ip: IPAddress = .loopbackIPv4, port: UInt16 = 0) throws -> LoopbackBackend {
        let backend = try LoopbackBackend.http(name: name, on: ip, port: port)
        lock.withLock { backends.append(backend) }
        return backend
    }

    /// A server keeping every request it gets in `requests` (a tracing collector).
    func recordingBackend(_ requests: RecordedRequests, answer: String = LoopbackBackend.emptyOK) throws -> LoopbackBackend {
        let backend = try LoopbackBackend.recorder(requests, answer: answer)
        lock.withLock { backends.append(backend) }
        return backend
    }

    /// `backend`, stopped with the testbed.
    func keep(_ backend: LoopbackBackend) -> LoopbackBackend {
        lock.withLock { backends.append(backend) }
        return backend
    }

    func echoBackend(on ip: IPAddress = .loopbackIPv4) throws -> LoopbackBackend {
        let backend = try LoopbackBackend.echo(on: ip)
        lock.withLock { backends.append(backend) }
        return backend
    }

    // MARK: Shims

    /// Starts edshim with `arguments` and the write end of a status pipe on fd 3, and
    /// returns at once with the pipe's read end (the caller closes it); the testbed
    /// stops the process at the end.
    func launchShim(_ arguments: [String]) throws -> (process: ChildProcess, status: Int32) {
        let pipe = try Sockets.pipe()
        defer { close(pipe.write) }
        do {
            return (try launchShim(arguments, descriptors: [3: pipe.write]), pipe.read)
        } catch {
            close(pipe.read)
            throw error
        }
    }

    /// Starts edshim with `arguments`, only `descriptors` beyond stdin, stdout and
    /// stderr (none: as run by hand), and returns at once; its output goes to
    /// shims.log, and the testbed stops it at the end.
    func launchShim(_ arguments: [String], descriptors: [Int32: Int32]) throws -> ChildProcess {
        let process = try ChildProcess.spawn(edshim, arguments, environment: environment, descriptors: descriptors, logPath: directory + "/shims.log")
        lock.withLock { shims.append(process) }
        return process
    }

    /// A copy of the testbed's edshim at `relativePath` in its directory (an installed
    /// binary, or another program with its name), for `launcher(running:)`.
    func copyOfEdshim(at relativePath: String) throws -> String {
        let copy = directory + "/" + relativePath
        try FileManager.default.createDirectory(atPath: AtomicFile.parent(of: copy) ?? directory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: edshim, toPath: copy)
        return copy
    }

    /// A `spawnShim` launcher that runs the shim from `executable` (a copy of edshim)
    /// instead of the testbed's edshim.
    static func launcher(running executable: String) -> [String] {
        ["/bin/sh", "-c", "shift; exec \"$0\" \"$@\"", executable]
    }

    /// Starts the shim the way dockerd does and waits (up to dockerd's 16 s) for its report on fd 3.
    /// Its output goes to the testbed's shims.log, or, as dockerd leaves it, to /dev/null.
    /// In `networkNamespace` (when given) the shim runs, and the dockerd ≥ 28 socket is made.
    func spawnShim(
        _ arguments: [String],
        style: SpawnStyle = .dockerd2010,
        argv0: String? = nil,
        environment extra: [String: String] = [:],
        host: SocketEndpoint? = nil,
        outputToDevNull: Bool = false,
        networkNamespace: NetworkNamespace? = nil,
        listenSocket: Int32? = nil,
        launcher: [String] = [],
        whileDockerdHoldsThePort: (() throws -> Void)? = nil
    ) async throws -> ShimRun {
        precondition(launcher.isEmpty || argv0 == nil, "a launcher execs edshim under its own path")
        let pipe = try Sockets.pipe()
        defer { close(pipe.read) }
        var descriptors: [Int32: Int32] = [3: pipe.write]
        var arguments = arguments
        var held: Int32?
        if style == .dockerd28, let host {
            let shimArguments = arguments
            let listener: Int32
            do {
                // A socket the test bound itself (`listenSocket`, taken over), else as dockerd binds it.
                if let listenSocket {
                    listener = listenSocket
                } else {
                    listener = try await NetworkNamespace.run(in: networkNamespace) { try Sockets.dockerdBoundSocket(host, for: shimArguments) }
                }
            } catch {
                close(pipe.write)
                throw error
            }
            held = listener
            descriptors[4] = listener
            arguments.append("-use-listen-fd")
        }
        // dockerd keeps its copy of the bound socket until the proxy has reported.
        defer { if let held { close(held) } }
        if held != nil {
            do {
                try whileDockerdHoldsThePort?()
            } catch {
                close(pipe.write)
                throw error
            }
        }
        var environment = self.environment
        for (key, value) in extra { environment[key] = value }
        let process: ChildProcess
        do {
            let line = launcher + [edshim] + arguments
            let (executable, command, childEnvironment, childDescriptors) = (line[0], Array(line.dropFirst()), environment, descriptors)
            let logPath = outputToDevNull ? "/dev/null" : directory + "/shims.log"
            process = try await NetworkNamespace.run(in: networkNamespace) {
                try ChildProcess.spawn(executable, command, argv0: argv0, environment: childEnvironment, descriptors: childDescriptors, logPath: logPath)
            }
        } catch {
            close(pipe.write)
            throw error
        }
        close(pipe.write)
        lock.withLock { shims.append(process) }
        let status = await Sockets.readStatus(pipe.read)
        return ShimRun(process: process, status: status)
    }

    /// Publishes `host` → `container` as dockerd would.
    func publish(
        _ host: SocketEndpoint,
        to container: SocketEndpoint,
        style: SpawnStyle = .dockerd2010,
        argv0: String? = nil,
        environment: [String: String] = [:]
    ) async throws -> ShimRun {
        let arguments = ShimArguments(proto: .tcp, host: host, container: container).commandLine
        return try await spawnShim(arguments, style: style, argv0: argv0, environment: environment, host: host)
    }

    /// Three IPv4 ports published to one backend, each served by Envoy.
    func publishThreePorts() async throws -> [UInt16] {
        let backend = try httpBackend("web")
        var ports: [UInt16] = []
        for _ in 0..<3 {
            let port = try Sockets.freePort()
            #expect(try await publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
            ports.append(port)
        }
        return ports
    }

    // MARK: Envoy admin

    func admin(_ path: String) throws -> String {
        let response = try TestHTTP.get(envoyAdmin, path: path)
        guard response.status == 200 else { throw TestFailure("Envoy admin \(path) answered \(response.status)") }
        return response.body
    }

    /// The JSON object an admin path answers; throws on anything else, so that a
    /// changed answer cannot pass for an empty one.
    private func adminObject(_ path: String) throws -> [String: Any] {
        let body = try admin(path)
        guard let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
            throw TestFailure("Envoy admin \(path) answered no JSON object: \(body.prefix(200))")
        }
        return object
    }

    /// Listener name → address, from Envoy's admin `/listeners`. (No listener: `{}`,
    /// protobuf JSON leaves out an empty list.)
    func listeners() throws -> [String: String] {
        let object = try adminObject("/listeners?format=json")
        var result: [String: String] = [:]
        for status in object["listener_statuses"] as? [[String: Any]] ?? [] {
            guard let name = status["name"] as? String else { continue }
            let address = (status["local_address"] as? [String: Any])?["socket_address"] as? [String: Any]
            result[name] = "\(address?["address"] ?? "?"):\(address?["port_value"] ?? "?")"
        }
        return result
    }

    /// Dynamic cluster name → endpoint addresses, from Envoy's admin `/clusters`.
    func clusters() throws -> [String: [String]] {
        let object = try adminObject("/clusters?format=json")
        var result: [String: [String]] = [:]
        for status in object["cluster_statuses"] as? [[String: Any]] ?? [] {
            guard let name = status["name"] as? String else { continue }
            result[name] = (status["host_statuses"] as? [[String: Any]] ?? []).map { host in
                let address = (host["address"] as? [String: Any])?["socket_address"] as? [String: Any]
                return "\(address?["address"] ?? "?"):\(address?["port_value"] ?? "?")"
            }
        }
        return result
    }

    /// A counter or gauge from Envoy's `/stats`. Throws when Envoy has no such
    /// statistic: a misspelt or renamed one must not read as 0.
    func stat(_ name: String) throws -> Int {
        let body = try admin("/stats?filter=^\(name)$")
        for line in body.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0] == name else { continue }
            guard let value = Int(parts[1].trimmingCharacters(in: .whitespaces)) else {
                throw TestFailure("Envoy's \(name) is not a number: \(line)")
            }
            return value
        }
        throw TestFailure("Envoy has no statistic \(name)")
    }

    /// Listener updates this Envoy rejected that the test caused on purpose (a port
    /// another program held when Envoy read lds.json): exactly that many are expected.
    var causedListenerRejections = 0

    /// Envoy rejected no listener or cluster update (a file it could parse but not
    /// apply) and failed to load none (a file it could not read or parse); no listener
    /// update but those the test caused.
    func expectNoRejectedUpdates(sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try stat("listener_manager.lds.update_rejected") == causedListenerRejections, "Envoy rejected a listener update:\n\(envoy?.log ?? "")", sourceLocation: sourceLocation)
        for (counter, what) in [
            ("cluster_manager.cds.update_rejected", "rejected a cluster update"),
            ("listener_manager.lds.update_failure", "failed to load lds.json"),
            ("cluster_manager.cds.update_failure", "failed to load cds.json"),
        ] {
            #expect(try stat(counter) == 0, "Envoy \(what) (\(counter)):\n\(envoy?.log ?? "")", sourceLocation: sourceLocation)
        }
    }

    /// Stops Envoy, once what it was given is checked (`expectEnvoyTookEveryUpdate`).
    func stopEnvoy() async throws {
        try await expectEnvoyTookEveryUpdate()
        envoyStoppedByTheTest = true
        await envoy?.stop()
    }

    /// The test stopped Envoy itself: its exit is no failure.
    private var envoyStoppedByTheTest = false

    /// Waits (up to 3 s) until Envoy has taken in the files now in the xds directory
    /// (its `version_text` of each equals the file's `version_info`), so that the last
    /// write counts too, then expects no rejected or failed update. An Envoy that
    /// does not follow the directory (a test recreated it) is checked after the wait.
    func expectEnvoyTookEveryUpdate(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        guard let envoy, !envoyStoppedByTheTest else { return }
        guard !envoy.hasExited else {
            Issue.record("Envoy exited during the test:\n\(envoy.log)", sourceLocation: sourceLocation)
            return
        }
        let deadline = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < deadline, !envoyHasTheFiles() {
            try await Task.sleep(for: .milliseconds(20))
        }
        try expectNoRejectedUpdates(sourceLocation: sourceLocation)
    }

    /// Whether Envoy's lds and cds version texts are those of the files on disk (true
    /// for a file that is not there).
    private func envoyHasTheFiles() -> Bool {
        [("lds", "listener_manager.lds.version_text"), ("cds", "cluster_manager.cds.version_text")].allSatisfy { file, readout in
            guard let text = try? String(contentsOfFile: "\(xdsDirectory)/\(file).json", encoding: .utf8) else { return true }
            guard let version = text.firstMatch(of: /"version_info" *: *"([^"]*)"/)?.1 else { return false }
            return (try? admin("/stats?filter=^\(readout)$"))?.contains("\(readout): \"\(version)\"") == true
        }
    }

    /// Waits until `condition` holds (polling), or fails with `message`.
    func eventually(_ message: String, timeout: Duration = .seconds(5), _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? condition()) == true { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        // Once more after the deadline: a busy machine may have let the last sleep
        // overrun it without a look.
        if (try? condition()) == true { return }
        throw TestFailure("timed out: \(message)")
    }

    /// The server's registrations.
    func registrations() throws -> [Registration] {
        let response = try ServerClient(socketPath: socketPath).exchange(.list, deadline: .after(milliseconds: 3000))
        guard case .registrations(let registrations, _) = response else { throw TestFailure("list answered \(response)") }
        return registrations
    }
}

/// Runs `body` with a fresh testbed; checks Envoy rejected nothing; tears down always.
/// At most `TestbedSlots.limit` testbeds run at once (each is a server and an Envoy):
/// on a small machine, forty Envoys starting together would turn every timeout into
/// a coin toss.
func withTestbed(_ options: Testbed.Options = Testbed.Options(), _ body: (Testbed) async throws -> Void) async throws {
    await TestbedSlots.shared.acquire()
    defer { Task { await TestbedSlots.shared.release() } }
    let bed = try await Testbed.start(options)
    do {
        try await body(bed)
        try await bed.expectEnvoyTookEveryUpdate()
    } catch {
        await bed.teardown()
        throw error
    }
    await bed.teardown()
}

/// An async semaphore bounding the testbeds alive at once (`EDSHIM_TESTBEDS`, default 4).
actor TestbedSlots {
    static let shared = TestbedSlots(limit: ProcessInfo.processInfo.environment["EDSHIM_TESTBEDS"].flatMap(Int.init) ?? 4)

    let limit: Int
    private var inUse = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    func acquire() async {
        if inUse < limit {
            inUse += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            inUse -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
