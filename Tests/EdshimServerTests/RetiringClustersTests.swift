import EdshimCore
@testable import EdshimServer
import Testing

@Suite("RetiringClusters")
struct RetiringClustersTests {
    static let endpoint = SocketEndpoint(ip: .loopbackIPv4, port: 8080)
    /// A listener on port 8080 for each service named (`nil`: unlabelled, `unknown-8080`),
    /// each on its own host address, and their clusters.
    static func configuration(_ services: [String?]) -> EnvoyConfiguration {
        EnvoyConfiguration(registrations: services.enumerated().map { index, service in
            Registration(
                key: RegistrationKey(proto: .tcp, host: SocketEndpoint(ip: IPAddress(bytes: [127, 0, 0, UInt8(index + 1)])!, port: 8080)),
                container: endpoint,
                owner: Owner(pid: 100, startTime: 1),
                metadata: ContainerMetadata(service: service),
                mode: .tcp
            )
        })
    }
    static func names(_ configuration: EnvoyConfiguration) -> [String] {
        configuration.clusters.map(\.name)
    }

    @Test("a cluster the target drops stays for the retention, then goes; one wanted again stops retiring")
    func retention() {
        var retiring = RetiringClusters(retention: .seconds(10))
        let start = ContinuousClock.now
        let before = Self.configuration([nil])
        let renamed = Self.configuration(["web"])

        let first = retiring.keep(in: renamed, after: before, now: start)
        #expect(Self.names(first) == ["unknown-8080-127_0_0_1", "web-8080-127_0_0_1"])
        #expect(retiring.nextExpiry == start + .seconds(10))
        // Published since, it keeps its first deadline.
        #expect(Self.names(retiring.keep(in: renamed, after: first, now: start + .seconds(9))) == ["unknown-8080-127_0_0_1", "web-8080-127_0_0_1"])
        #expect(Self.names(retiring.keep(in: renamed, after: first, now: start + .seconds(10))) == ["web-8080-127_0_0_1"])
        #expect(retiring.nextExpiry == nil)

        _ = retiring.keep(in: renamed, after: before, now: start)
        let back = retiring.keep(in: before, after: first, now: start + .seconds(1))
        #expect(Self.names(back) == ["unknown-8080-127_0_0_1", "web-8080-127_0_0_1"], "web-8080 retires in turn")
        #expect(retiring.nextExpiry == start + .seconds(11))
    }

    @Test("no retention: the target as it is")
    func none() {
        var retiring = RetiringClusters(retention: .zero)
        let target = Self.configuration(["web"])
        #expect(retiring.keep(in: target, after: Self.configuration([nil]), now: .now) == target)
        #expect(retiring.nextExpiry == nil)
    }

    @Test("a deregistered port's cluster goes at once: its container is gone, and the next container at that address is another's")
    func removedListener() {
        var retiring = RetiringClusters(retention: .seconds(10))
        let start = ContinuousClock.now
        let two = Self.configuration(["web", "api"])
        let one = Self.configuration(["web"])
        #expect(Self.names(retiring.keep(in: one, after: two, now: start)) == ["web-8080-127_0_0_1"])
        #expect(retiring.nextExpiry == nil)
    }

    @Test("a kept cluster goes once the listener that used it is deregistered too")
    func keptUntilItsListenerGoes() {
        var retiring = RetiringClusters(retention: .seconds(10))
        let start = ContinuousClock.now
        let renamed = retiring.keep(in: Self.configuration(["web", "api"]), after: Self.configuration([nil, "api"]), now: start)
        #expect(Self.names(renamed) == ["api-8080-127_0_0_2", "unknown-8080-127_0_0_1", "web-8080-127_0_0_1"])
        // The renamed port's listener goes: so does the cluster kept for its connections.
        let both = Self.configuration(["web", "api"])
        let apiAlone = EnvoyConfiguration(listeners: both.listeners.filter { $0.name == "tcp_127.0.0.2_8080" }, clusters: both.clusters.filter { $0.name.hasPrefix("api") })
        let gone = retiring.keep(in: apiAlone, after: renamed, now: start + .seconds(1))
        #expect(Self.names(gone) == ["api-8080-127_0_0_2"])
    }
}
