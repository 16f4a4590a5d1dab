@testable import EdshimCore
import Testing

/// `EnvoyConfiguration.steps`: clusters before the listeners that use them,
/// listeners removed before their clusters, every step consistent.
@Suite("EnvoyConfiguration.steps on known changes")
struct UpdateStepsTests {
    static func configuration(_ registrations: [Registration]) -> EnvoyConfiguration {
        EnvoyConfiguration(registrations: registrations)
    }

    @Test func noStepsWhenNothingChanges() throws {
        #expect(EnvoyConfiguration.steps(from: .empty, to: .empty).isEmpty)
        let configuration = try EnvoyScenario.twoServices.configuration()
        #expect(EnvoyConfiguration.steps(from: configuration, to: configuration).isEmpty)
        let reordered = EnvoyConfiguration(registrations: try EnvoyScenario.twoServices.registrations().reversed())
        #expect(EnvoyConfiguration.steps(from: configuration, to: reordered).isEmpty)
    }

    @Test func addingSendsClustersBeforeListeners() throws {
        let target = try EnvoyScenario.httpSinglePort.configuration()
        let steps = EnvoyConfiguration.steps(from: .empty, to: target)
        try #require(steps.count == 2)
        #expect(steps[0].listeners.isEmpty && steps[0].clusters == target.clusters)
        #expect(steps[1] == target)
    }

    @Test func removingDropsListenersBeforeClusters() throws {
        let old = try EnvoyScenario.httpSinglePort.configuration()
        let steps = EnvoyConfiguration.steps(from: old, to: .empty)
        try #require(steps.count == 2)
        #expect(steps[0].listeners.isEmpty && steps[0].clusters == old.clusters)
        #expect(steps[1] == .empty)
    }

    @Test func addingASecondServiceLeavesTheFirstUntouched() throws {
        let old = Self.configuration(Array(try EnvoyScenario.twoServices.registrations().prefix(1)))
        let new = try EnvoyScenario.twoServices.configuration()
        let steps = EnvoyConfiguration.steps(from: old, to: new)
        try #require(steps.count == 2)
        #expect(steps[0].listeners == old.listeners && steps[0].clusters == new.clusters)
        #expect(steps[1] == new)
        let untouched = try #require(old.listeners.first)
        #expect(steps.allSatisfy { $0.listeners.contains(untouched) })
    }

    /// A relabelled container: the listener keeps its name but routes to a new cluster.
    @Test func relabellingAddsTheNewClusterFirstAndRemovesTheOldLast() throws {
        let before = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx")
        var after = before
        after.metadata = ContainerMetadata(service: "web")
        let old = Self.configuration([before])
        let new = Self.configuration([after])
        let steps = EnvoyConfiguration.steps(from: old, to: new)
        try #require(steps.count == 3)
        #expect(Set(steps[0].clusters.map(\.name)) == ["nginx-8080", "web-8080"] && steps[0].listeners == old.listeners)
        #expect(steps[1].listeners == new.listeners && Set(steps[1].clusters.map(\.name)) == ["nginx-8080", "web-8080"])
        #expect(steps[2] == new)
        #expect(steps.allSatisfy { $0.missingClusters.isEmpty })
    }

    /// A restarted container (new IP): only the cluster changes.
    @Test func aNewContainerAddressChangesOnlyTheCluster() throws {
        let before = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx")
        var after = before
        after.container = try Fixture.endpoint("172.17.0.7", 80)
        let old = Self.configuration([before])
        let new = Self.configuration([after])
        #expect(old.listeners == new.listeners)
        #expect(EnvoyConfiguration.steps(from: old, to: new) == [new])
    }

    @Test func changingModeChangesOnlyTheListener() throws {
        let before = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx", mode: .http)
        var after = before
        after.mode = .tcp
        let new = Self.configuration([after])
        #expect(EnvoyConfiguration.steps(from: Self.configuration([before]), to: new) == [new])
    }

    @Test func missingClustersNamesWhatIsAbsent() throws {
        let configuration = try EnvoyScenario.twoServices.configuration()
        let broken = EnvoyConfiguration(listeners: configuration.listeners, clusters: Array(configuration.clusters.prefix(1)))
        #expect(configuration.missingClusters.isEmpty)
        #expect(broken.missingClusters == Set(configuration.clusters.dropFirst().map(\.name)))
    }
}
