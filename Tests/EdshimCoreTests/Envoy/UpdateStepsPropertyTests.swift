@testable import EdshimCore
import EdshimTestSupport
import Testing

/// `EnvoyConfiguration.steps` on a few hundred random pairs of registry states,
/// drawn from a seeded generator so that a failure reproduces.
@Suite("EnvoyConfiguration.steps on random registry states")
struct UpdateStepsPropertyTests {
    static let hosts = ["0.0.0.0", "::", "127.0.0.1", "::1"]
    static let ports: [UInt16] = [80, 8080, 9000]
    static let containers = ["172.17.0.2", "172.17.0.3", "fd00::2"]
    static let services: [String?] = [nil, "web", "api", "a.b"]
    static let environments: [String?] = [nil, "prod", ""]

    static func randomRegistry(_ generator: inout SeededGenerator) throws -> Registry {
        var registry = Registry()
        for host in hosts {
            for port in ports where Bool.random(using: &generator) && Bool.random(using: &generator) {
                registry.register(try Fixture.registration(
                    Int.random(in: 0..<8, using: &generator) == 0 ? .udp : .tcp,
                    host: host, port,
                    container: containers.randomElement(using: &generator) ?? "172.17.0.2",
                    [80, 8080].randomElement(using: &generator) ?? 80,
                    service: services.randomElement(using: &generator) ?? nil,
                    environment: environments.randomElement(using: &generator) ?? nil,
                    mode: Bool.random(using: &generator) ? .http : .tcp
                ))
            }
        }
        return registry
    }

    /// Mutates a registry the way the server sees it change: a register, a replace or a deregister.
    static func nudge(_ registry: Registry, _ generator: inout SeededGenerator) throws -> Registry {
        var next = registry
        let changes = Int.random(in: 0...2, using: &generator)
        for _ in 0..<changes {
            let host = hosts.randomElement(using: &generator) ?? "0.0.0.0"
            let port = ports.randomElement(using: &generator) ?? 80
            if Bool.random(using: &generator), let victim = next.registrations.randomElement(using: &generator) {
                next.remove(victim.key)
            } else {
                next.register(try Fixture.registration(
                    host: host, port,
                    container: containers.randomElement(using: &generator) ?? "172.17.0.2", 80,
                    service: services.randomElement(using: &generator) ?? nil,
                    mode: Bool.random(using: &generator) ? .http : .tcp
                ))
            }
        }
        return next
    }

    @Test func everyStepIsConsistentAndChangesOneResourceType() throws {
        var generator = SeededGenerator(seed: 0x5EED_ED51)
        var checkedSteps = 0
        for round in 0..<400 {
            let oldRegistry = try Self.randomRegistry(&generator)
            let newRegistry = round.isMultiple(of: 2) ? try Self.nudge(oldRegistry, &generator) : try Self.randomRegistry(&generator)
            let old = EnvoyConfiguration(registrations: oldRegistry.registrations)
            let new = EnvoyConfiguration(registrations: newRegistry.registrations)
            #expect(old.missingClusters.isEmpty && new.missingClusters.isEmpty)

            let steps = EnvoyConfiguration.steps(from: old, to: new)
            if old == new {
                #expect(steps.isEmpty, "round \(round): no steps for equal configurations")
                continue
            }
            #expect(steps.last == new, "round \(round): the last step is the target")
            #expect(steps.count <= 3, "round \(round)")

            let unchangedListeners = Set(old.listeners).intersection(new.listeners)
            var previous = old
            for (index, step) in steps.enumerated() {
                #expect(step.missingClusters.isEmpty, "round \(round) step \(index): listeners route to missing clusters \(step.missingClusters)")
                let listenersChanged = step.listeners != previous.listeners
                let clustersChanged = step.clusters != previous.clusters
                #expect(listenersChanged != clustersChanged, "round \(round) step \(index): exactly one of listeners/clusters changes")
                #expect(unchangedListeners.isSubset(of: step.listeners), "round \(round) step \(index): an untouched listener stays as it was")
                previous = step
                checkedSteps += 1
            }
        }
        #expect(checkedSteps > 300, "the generator must exercise many steps, checked \(checkedSteps)")
    }

    @Test func stepsBetweenArbitraryHandBuiltConfigurations() throws {
        // Not produced from registries: clusters no listener uses, listeners sharing clusters.
        var generator = SeededGenerator(seed: 99)
        var checkedRounds = 0
        for round in 0..<200 {
            let pool = try Self.randomRegistry(&generator).registrations + Self.randomRegistry(&generator).registrations
            let full = EnvoyConfiguration(registrations: pool)
            let old = EnvoyConfiguration(listeners: full.listeners.filter { _ in Bool.random(using: &generator) }, clusters: full.clusters)
            let new = EnvoyConfiguration(listeners: full.listeners.filter { _ in Bool.random(using: &generator) }, clusters: full.clusters.filter { _ in Bool.random(using: &generator) })
            guard new.missingClusters.isEmpty else { continue }
            let steps = EnvoyConfiguration.steps(from: old, to: new)
            #expect(steps.isEmpty == (old == new), "round \(round)")
            if let last = steps.last { #expect(last == new, "round \(round)") }
            #expect(steps.allSatisfy { $0.missingClusters.isEmpty }, "round \(round)")
            checkedRounds += 1
        }
        #expect(checkedRounds >= 20, "only \(checkedRounds) of 200 rounds had a consistent target")
    }
}
