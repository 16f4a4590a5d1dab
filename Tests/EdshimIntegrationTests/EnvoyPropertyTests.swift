import EdshimCore
import EdshimTestSupport
import Foundation
import Testing

/// Random operations against a real server and a real Envoy. Invariants: Envoy
/// rejects no update; once settled, Envoy's listeners and clusters and the server's
/// registrations are exactly the live model; a keep-alive connection on a listener no
/// operation touches keeps working and is never told to close.
///
/// `EDSHIM_PROPERTY_OPERATIONS` (default 2,000; `make test-long`: 10,000) and
/// `EDSHIM_PROPERTY_SEED` (printed on every run, to replay a failure).
@Suite("Envoy never rejects, never drains needlessly")
struct EnvoyPropertyTests {
    @Test("random register / replace / deregister / kill / twins / odd labels")
    func randomOperations() async throws {
        let environment = ProcessInfo.processInfo.environment
        let operations = environment["EDSHIM_PROPERTY_OPERATIONS"].flatMap(Int.init) ?? 2000
        let seed = environment["EDSHIM_PROPERTY_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
        print("property test: \(operations) operations, EDSHIM_PROPERTY_SEED=\(seed)")
        let docker = try FakeDockerEngine(socketPath: "/tmp/edshim-fake-docker-\(getpid())-\(seed % 100_000).sock")
        defer { docker.stop() }
        var options = Testbed.Options()
        options.serverArguments = ["--docker-host", "unix://\(docker.socketPath)"]
        try await withTestbed(options) { bed in
            var run = PropertyRun(bed: bed, docker: docker, generator: SeededGenerator(seed: seed))
            try await run.start()
            for step in 0..<operations {
                try await run.randomOperation(step: step)
                if step % 50 == 49 { try await run.checkSettled(after: step) }
            }
            try await run.checkSettled(after: operations)
            print("property test: performed \(run.performed.sorted { $0.key < $1.key })")
            // The run exercised what it claims to: every kind of operation, and few
            // rolls that found nothing to act on. (Each kind is at least ~5 % of the
            // rolls, so a run of 100 or more misses none but by a broken generator.)
            if operations >= 100 {
                for kind in ["register", "twins", "replace", "deregister", "kill", "end-replaced-shim"] {
                    #expect(run.performed[kind, default: 0] > 0, "no \(kind) in \(operations) operations")
                }
                let skipped = run.performed.filter { $0.key.hasSuffix("-skipped") }.values.reduce(0, +)
                #expect(skipped * 10 < operations, "\(skipped) of \(operations) operations found nothing to do")
            }
        }
    }
}

/// The model and the operations of one property run.
struct PropertyRun {
    struct Live {
        var shim: ChildProcess
        var container: IPAddress
        var labels: [String: String]
    }

    let bed: Testbed
    let docker: FakeDockerEngine
    var generator: SeededGenerator
    var live: [RegistrationKey: Live] = [:] {
        didSet { named = Self.named(live, after: named) }
    }
    /// The live model as the server's registry names it: a twin that serves another
    /// container than its twin gets a cluster of its own, decided when it registers.
    var named = Registry()
    var orphans: [ChildProcess] = []
    var ports: [UInt16] = []
    var anchor: KeepAliveClient?
    var nextContainer = 1
    var performed: [String: Int] = [:]

    static let labelValues = [
        "web", "api", "Café Crème/v2", "new\nline", "dots.and:colons", "日本", "🚀", "", "quo\"te",
        String(repeating: "long", count: 250), "a b c", "-_-",
    ]
    static let modes = ["http", "tcp", "HTTP", "http-only", "grpc", ""]

    init(bed: Testbed, docker: FakeDockerEngine, generator: SeededGenerator) {
        self.bed = bed
        self.docker = docker
        self.generator = generator
    }

    /// The untouched listener with its keep-alive connection, and the port pool.
    mutating func start() async throws {
        let backend = try bed.httpBackend("anchor")
        let anchorHost = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
        let anchorShim = try await bed.publish(anchorHost, to: backend.endpoint)
        guard anchorShim.isReady else { throw TestFailure("anchor: \(anchorShim.status)") }
        anchor = try KeepAliveClient(SocketEndpoint(ip: .loopbackIPv4, port: anchorHost.port))
        _ = try anchor?.request()
        for _ in 0..<16 { ports.append(try Sockets.freePort()) }
        anchorKey = RegistrationKey(proto: .tcp, host: anchorHost)
        anchorOwner = anchorShim.process.pid
    }

    var anchorKey: RegistrationKey?
    var anchorOwner: Int32 = 0

    mutating func randomOperation(step: Int) async throws {
        let roll = Int.random(in: 0..<100, using: &generator)
        let name: String
        switch roll {
        case 0..<30 where live.count < 24: name = try await register(twins: false)
        case 30..<40 where live.count < 22: name = try await register(twins: true)
        case 40..<55 where !live.isEmpty: name = try await replace()
        case 55..<75 where !live.isEmpty: name = try await deregister()
        case 75..<90 where !live.isEmpty: name = try await kill()
        case 90..<100 where !orphans.isEmpty: name = try await endOrphan()
        default: name = live.count < 24 ? try await register(twins: false) : try await deregister()
        }
        performed[name, default: 0] += 1
    }

    /// `registry` brought in line with `live`: keys gone are removed, keys new or
    /// given another shim are registered, in key order as the operations make them
    /// (one at a time, or the two twins of one container).
    private static func named(_ live: [RegistrationKey: Live], after registry: Registry) -> Registry {
        var registry = registry
        for registration in registry.registrations where live[registration.key] == nil {
            registry.remove(registration.key)
        }
        for (key, entry) in live.sorted(by: { $0.key < $1.key }) where registry[key]?.owner.pid != entry.shim.pid {
            let metadata = ContainerLabels.read(entry.labels, containerID: FakeDockerEngine.id(of: entry.container), containerName: nil).metadata
            let container = SocketEndpoint(ip: entry.container, port: 80)
            registry.register(Registration(key: key, container: container, owner: Owner(pid: entry.shim.pid, startTime: 0), metadata: metadata, mode: .http))
        }
        return registry
    }

    private mutating func newContainer() -> (IPAddress, [String: String]) {
        let n = nextContainer
        nextContainer += 1
        let ip = IPAddress(bytes: [127, UInt8(1 + (n / 65536) % 200), UInt8((n / 256) % 256), UInt8(n % 256)]) ?? .loopbackIPv4
        var labels: [String: String] = [:]
        if Bool.random(using: &generator) { labels["ServiceName"] = Self.labelValues.randomElement(using: &generator) }
        if Bool.random(using: &generator) { labels["edshim.service"] = Self.labelValues.randomElement(using: &generator) }
        if Bool.random(using: &generator) { labels["EnvironmentName"] = Self.labelValues.randomElement(using: &generator) }
        if Bool.random(using: &generator) { labels["ProxyMode"] = Self.modes.randomElement(using: &generator) }
        docker.set(ip, labels: labels)
        return (ip, labels)
    }

    private func freeKeys() -> [RegistrationKey] {
        ports.flatMap { port in
            [IPAddress.anyIPv4, .anyIPv6].map { RegistrationKey(proto: .tcp, host: SocketEndpoint(ip: $0, port: port)) }
        }.filter { live[$0] == nil }
    }

    private mutating func spawn(_ key: RegistrationKey, _ container: IPAddress, style: SpawnStyle) async throws -> ChildProcess {
        let containerEndpoint = SocketEndpoint(ip: container, port: 80)
        if style == .dockerd28 {
            // dockerd binds the port itself: wait until Envoy has closed the socket of a
            // listener just removed for it (fast, but not instant under load).
            let bed = self.bed
            try await bed.eventually("\(key.host) is free for dockerd to bind") {
                !ListenTable.read().contains { $0.endpoint.bindConflicts(with: key.host) }
            }
        }
        let shim = try await bed.publish(key.host, to: containerEndpoint, style: style)
        guard shim.isReady else { throw TestFailure("publishing \(key) (\(style)): \(shim.status)") }
        return shim.process
    }

    private mutating func register(twins: Bool) async throws -> String {
        let candidates = twins
            ? ports.filter { port in [IPAddress.anyIPv4, .anyIPv6].allSatisfy { live[RegistrationKey(proto: .tcp, host: SocketEndpoint(ip: $0, port: port))] == nil } }
                .flatMap { port in [IPAddress.anyIPv4, .anyIPv6].map { RegistrationKey(proto: .tcp, host: SocketEndpoint(ip: $0, port: port)) } }
            : freeKeys()
        guard let first = candidates.randomElement(using: &generator) else { return "register-skipped" }
        let keys = twins ? candidates.filter { $0.host.port == first.host.port } : [first]
        let (container, labels) = newContainer()
        for key in keys {
            let style: SpawnStyle = Bool.random(using: &generator) ? .dockerd28 : .dockerd2010
            live[key] = Live(shim: try await spawn(key, container, style: style), container: container, labels: labels)
        }
        return twins ? "twins" : "register"
    }

    private mutating func replace() async throws -> String {
        guard let key = live.keys.sorted().randomElement(using: &generator), let old = live[key] else { return "replace-skipped" }
        let (container, labels) = newContainer()
        // The port is Envoy's already: dockerd could not bind it, so this is the 20.10 way.
        live[key] = Live(shim: try await spawn(key, container, style: .dockerd2010), container: container, labels: labels)
        orphans.append(old.shim)
        return "replace"
    }

    private mutating func deregister() async throws -> String {
        guard let key = live.keys.sorted().randomElement(using: &generator), let entry = live.removeValue(forKey: key) else { return "deregister-skipped" }
        entry.shim.signal(SIGINT)
        guard await entry.shim.waitForExit(timeout: .seconds(5)) == 0 else { throw TestFailure("shim for \(key) did not exit 0 on SIGINT") }
        return "deregister"
    }

    private mutating func kill() async throws -> String {
        guard let key = live.keys.sorted().randomElement(using: &generator), let entry = live.removeValue(forKey: key) else { return "kill-skipped" }
        entry.shim.signal(SIGKILL)
        _ = await entry.shim.waitForExit(timeout: .seconds(5))
        let name = ServiceNaming.listenerName(for: key)
        // The next registration of this port must find it free.
        try await bed.eventually("Envoy drops the killed shim's listener \(name)") { try bed.listeners()[name] == nil }
        return "kill"
    }

    private mutating func endOrphan() async throws -> String {
        let index = Int.random(in: 0..<orphans.count, using: &generator)
        let orphan = orphans.remove(at: index)
        orphan.signal(Bool.random(using: &generator) ? SIGINT : SIGKILL)
        _ = await orphan.waitForExit(timeout: .seconds(5))
        return "end-replaced-shim"
    }

    /// Envoy and the server agree with the model, and the anchor was never drained.
    mutating func checkSettled(after step: Int) async throws {
        guard let anchorKey else { return }
        var expectedListeners = Set(live.keys.map(ServiceNaming.listenerName(for:)))
        expectedListeners.insert(ServiceNaming.listenerName(for: anchorKey))
        var expectedClusters: Set<String> = ["unknown-\(anchorKey.host.port)"]
        expectedClusters.formUnion(named.registrations.map(\.serviceName))
        var expectedOwners = Set(live.values.map(\.shim.pid))
        expectedOwners.insert(anchorOwner)
        let bed = self.bed
        do {
            try await bed.eventually("settled after operation \(step)", timeout: .seconds(10)) {
                let listeners = Set(try bed.listeners().keys)
                let clusters = Set(try bed.clusters().keys)
                let owners = Set(try bed.registrations().map(\.owner.pid))
                return listeners == expectedListeners && clusters == expectedClusters && owners == expectedOwners
            }
        } catch {
            throw TestFailure("""
                \(error)
                listeners: Envoy \(Set(try bed.listeners().keys).symmetricDifference(expectedListeners).sorted()) differ
                clusters: Envoy \(Set(try bed.clusters().keys).symmetricDifference(expectedClusters).sorted()) differ
                """)
        }
        try bed.expectNoRejectedUpdates()
        _ = try anchor?.request()
    }
}
