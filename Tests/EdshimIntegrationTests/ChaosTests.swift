import EdshimCore
import EdshimTestSupport
import Foundation
import Synchronization
import Testing

/// The server is SIGKILLed at random moments while shims register, deregister and die.
/// After the last restart, the server and Envoy list exactly the live shims, and every
/// live port is served through Envoy.
///
/// `EDSHIM_CHAOS_SHIMS` (default 60; `make test-long`: 200), `EDSHIM_CHAOS_SEED`.
@Suite("Chaos: the server killed at random")
struct ChaosTests {
    @Test("shims come and go while the server keeps dying; in the end everything agrees")
    func serverKilledAtRandom() async throws {
        let environment = ProcessInfo.processInfo.environment
        let total = environment["EDSHIM_CHAOS_SHIMS"].flatMap(Int.init) ?? 60
        let seed = environment["EDSHIM_CHAOS_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
        print("chaos test: \(total) shims, EDSHIM_CHAOS_SEED=\(seed)")
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            var generator = SeededGenerator(seed: seed)
            let killer = ServerKiller(bed: bed, seed: generator.next())
            let killing = Task { await killer.run() }

            var live: [(key: RegistrationKey, shim: ChildProcess)] = []
            var endings: [ChildProcess] = []
            do {
                for index in 0..<total {
                    let host = SocketEndpoint(ip: index % 5 == 4 ? .anyIPv6 : .anyIPv4, port: try Sockets.freePort())
                    let style: SpawnStyle = Bool.random(using: &generator) ? .dockerd28 : .dockerd2010
                    let shim = try await bed.publish(host, to: backend.endpoint, style: style)
                    #expect(shim.isReady, "shim \(index) reported \(shim.status.debugDescription) (the server may be down; it must serve anyway)")
                    live.append((RegistrationKey(proto: .tcp, host: host), shim.process))
                    // Some shims end while the server may be dead: deregistered or killed.
                    if live.count > 5, Int.random(in: 0..<100, using: &generator) < 45 {
                        let victim = live.remove(at: Int.random(in: 0..<live.count, using: &generator))
                        victim.shim.signal(Bool.random(using: &generator) ? SIGINT : SIGKILL)
                        endings.append(victim.shim)
                    }
                }
            } catch {
                // The killer must not start servers while the testbed is taken down.
                await killer.stop()
                await killing.value
                throw error
            }
            await killer.stop()
            await killing.value
            for ended in endings { _ = await ended.waitForExit(timeout: .seconds(5)) }
            print("chaos test: server killed \(await killer.kills) times; \(live.count) shims live, \(endings.count) ended")

            // The last restart.
            await bed.killServer()
            try await bed.startServer()
            let expectedListeners = Set(live.map { ServiceNaming.listenerName(for: $0.key) })
            let expectedOwners = Set(live.map(\.shim.pid))
            try await bed.eventually("the server and Envoy list exactly the live shims, and shims that served ports themselves handed them over", timeout: .seconds(30)) {
                let owners = Set(try bed.registrations().map(\.owner.pid))
                let listeners = Set(try bed.listeners().keys)
                // Envoy runs one worker: one listening socket per port, Envoy's.
                let table = ListenTable.read()
                let handedOver = live.allSatisfy { entry in table.filter { $0.endpoint == entry.key.host }.count == 1 }
                return owners == expectedOwners && listeners == expectedListeners && handedOver
            }
            for entry in live {
                let response = try TestHTTP.get(SocketEndpoint(ip: entry.key.host.ip.dialable, port: entry.key.host.port))
                #expect(response.status == 200)
                #expect(response.servedByEnvoy, "\(entry.key) is served by Envoy")
            }
            let status = try await Binaries.run(bed.edshim, ["status", "--json"], environment: bed.environment, in: bed.directory)
            let listed = try JSONSerialization.jsonObject(with: Data(status.output.utf8)) as? [[String: Any]] ?? []
            #expect(Set(listed.compactMap { ($0["owner_pid"] as? Int).map(Int32.init) }) == expectedOwners)
            let resync = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(resync.output.contains("resynced \(live.count) of \(live.count)"), "\(resync.output)")
        }
    }
}

/// Kills the testbed's server with SIGKILL at random moments and starts it again.
actor ServerKiller {
    private let bed: Testbed
    private var generator: SeededGenerator
    private var stopping = false
    private(set) var kills = 0

    init(bed: Testbed, seed: UInt64) {
        self.bed = bed
        self.generator = SeededGenerator(seed: seed)
    }

    func run() async {
        while !stopping {
            try? await Task.sleep(for: .milliseconds(Int.random(in: 100...500, using: &generator)))
            guard !stopping else { break }
            await bed.killServer()
            kills += 1
            try? await Task.sleep(for: .milliseconds(Int.random(in: 20...400, using: &generator)))
            try? await bed.startServer()
        }
    }

    func stop() {
        stopping = true
    }
}
