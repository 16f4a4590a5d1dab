import EdshimCore
@testable import EdshimServer
import Testing

@Suite("RetiringClusters")
struct RetiringClustersTests {
    static let endpoint = SocketEndpoint(ip: .loopbackIPv4, port: 8080)
    static func configuration(_ names: [String]) -> EnvoyConfiguration {
        EnvoyConfiguration(listeners: [], clusters: names.map { ClusterBuilder.cluster(name: $0, endpoints: [endpoint]) })
    }
    static func names(_ configuration: EnvoyConfiguration) -> [String] {
        configuration.clusters.map(\.name)
    }

    @Test("a cluster the target drops stays for the retention, then goes; one wanted again stops retiring")
    func retention() {
        var retiring = RetiringClusters(retention: .seconds(10))
        let start = ContinuousClock.now
        let before = Self.configuration(["unknown-8080"])
        let renamed = Self.configuration(["web-8080"])

        let first = retiring.keep(in: renamed, after: before, now: start)
        #expect(Self.names(first) == ["unknown-8080", "web-8080"])
        #expect(retiring.nextExpiry == start + .seconds(10))
        // Published since, it keeps its first deadline.
        #expect(Self.names(retiring.keep(in: renamed, after: first, now: start + .seconds(9))) == ["unknown-8080", "web-8080"])
        #expect(Self.names(retiring.keep(in: renamed, after: first, now: start + .seconds(10))) == ["web-8080"])
        #expect(retiring.nextExpiry == nil)

        _ = retiring.keep(in: renamed, after: before, now: start)
        let back = retiring.keep(in: before, after: first, now: start + .seconds(1))
        #expect(Self.names(back) == ["unknown-8080", "web-8080"], "web-8080 retires in turn")
        #expect(retiring.nextExpiry == start + .seconds(11))
    }

    @Test("no retention: the target as it is")
    func none() {
        var retiring = RetiringClusters(retention: .zero)
        let target = Self.configuration(["web-8080"])
        #expect(retiring.keep(in: target, after: Self.configuration(["unknown-8080"]), now: .now) == target)
        #expect(retiring.nextExpiry == nil)
    }
}
