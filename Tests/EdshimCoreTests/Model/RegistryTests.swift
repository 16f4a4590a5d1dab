@testable import EdshimCore
import Testing

@Suite("Registry")
struct RegistryTests {
    static let first = Owner(pid: 100, startTime: 5_000)
    static let restarted = Owner(pid: 200, startTime: 6_000)

    @Test func registerReturnsWhatItReplaced() throws {
        var registry = Registry()
        let old = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, owner: Self.first)
        let new = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.9", 80, service: "web", owner: Self.restarted)
        #expect(registry.register(old) == nil)
        #expect(registry.register(new) == old)
        #expect(registry.count == 1)
        #expect(registry[new.key] == new)
    }

    @Test func keysDifferByProtoAddressAndPort() throws {
        var registry = Registry()
        registry.register(try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80))
        registry.register(try Fixture.registration(.udp, host: "0.0.0.0", 8080, container: "172.17.0.2", 80))
        registry.register(try Fixture.registration(host: "::", 8080, container: "172.17.0.2", 80))
        registry.register(try Fixture.registration(host: "0.0.0.0", 8081, container: "172.17.0.2", 80))
        registry.register(try Fixture.registration(host: "0:0::0", 8080, container: "172.17.0.3", 80))
        #expect(registry.count == 4, "`0:0::0` is the same key as `::`")
    }

    @Test func deregisterRemovesOnlyForTheExactOwner() throws {
        var registry = Registry()
        let registration = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, owner: Self.first)
        registry.register(registration)

        // Same pid, different start time: a new process that reused the pid.
        let reusedPID = Owner(pid: Self.first.pid, startTime: Self.first.startTime + 1)
        #expect(registry.deregister(registration.key, owner: reusedPID) == .ownedByAnother(Self.first))
        // Same start time, other pid.
        #expect(registry.deregister(registration.key, owner: Owner(pid: 101, startTime: Self.first.startTime)) == .ownedByAnother(Self.first))
        #expect(registry[registration.key] == registration)

        #expect(registry.deregister(registration.key, owner: Self.first) == .removed(registration))
        #expect(registry[registration.key] == nil)
        #expect(registry.deregister(registration.key, owner: Self.first) == .notRegistered)
    }

    /// The restart race: the new shim registered before the old one deregistered.
    @Test func lateDeregistrationOfAReplacedOwnerLeavesTheNewOne() throws {
        var registry = Registry()
        let old = try Fixture.registration(host: "::", 80, container: "172.17.0.2", 80, owner: Self.first)
        let new = try Fixture.registration(host: "::", 80, container: "172.17.0.3", 80, owner: Self.restarted)
        registry.register(old)
        registry.register(new)
        #expect(registry.deregister(old.key, owner: Self.first) == .ownedByAnother(Self.restarted))
        #expect(registry[old.key] == new)
    }

    @Test func deregisterOfAnUnknownKey() throws {
        var registry = Registry()
        registry.register(try Fixture.registration(host: "0.0.0.0", 80, container: "172.17.0.2", 80))
        #expect(registry.deregister(try Fixture.key("0.0.0.0", 81), owner: Fixture.owner) == .notRegistered)
        #expect(registry.deregister(try Fixture.key(.udp, "0.0.0.0", 80), owner: Fixture.owner) == .notRegistered)
        #expect(registry.count == 1)
    }

    @Test func removeIgnoresOwnership() throws {
        var registry = Registry()
        let registration = try Fixture.registration(host: "0.0.0.0", 80, container: "172.17.0.2", 80)
        registry.register(registration)
        #expect(registry.remove(registration.key) == registration)
        #expect(registry.remove(registration.key) == nil)
        #expect(registry.count == 0)
    }

    @Test func overlapping() throws {
        var registry = Registry()
        let any4 = try Fixture.registration(host: "0.0.0.0", 80, container: "172.17.0.2", 80)
        let any6 = try Fixture.registration(host: "::", 80, container: "172.17.0.2", 80)
        let loop4 = try Fixture.registration(host: "127.0.0.1", 80, container: "172.17.0.3", 80)
        let other4 = try Fixture.registration(host: "10.0.0.1", 80, container: "172.17.0.4", 80)
        let otherPort = try Fixture.registration(host: "127.0.0.1", 81, container: "172.17.0.5", 80)
        let udp = try Fixture.registration(.udp, host: "127.0.0.1", 80, container: "172.17.0.6", 80)
        for registration in [any4, any6, loop4, other4, otherPort, udp] { registry.register(registration) }

        #expect(registry.overlapping(any4.key) == [other4, loop4], "0.0.0.0 overlaps every IPv4 address of the port, not ::")
        #expect(registry.overlapping(loop4.key) == [any4])
        #expect(registry.overlapping(any6.key) == [])
        #expect(registry.overlapping(otherPort.key) == [])
        #expect(registry.overlapping(udp.key) == [], "protocols never overlap")
        #expect(registry.overlapping(try Fixture.key("::1", 80)) == [any6])
        #expect(registry.overlapping(try Fixture.key("0.0.0.0", 81)) == [otherPort])
    }

    @Test func keysOverlapLikeTheirEndpoints() throws {
        #expect(try Fixture.key("0.0.0.0", 80).overlaps(try Fixture.key("127.0.0.1", 80)))
        #expect(try !Fixture.key("0.0.0.0", 80).overlaps(try Fixture.key("::", 80)))
        #expect(try !Fixture.key("0.0.0.0", 80).overlaps(try Fixture.key("0.0.0.0", 81)))
        #expect(try !Fixture.key(.tcp, "0.0.0.0", 80).overlaps(try Fixture.key(.udp, "0.0.0.0", 80)))
    }

    @Test func registrationsAreSortedByKey() throws {
        let inputs = try [
            Fixture.registration(host: "::", 80, container: "172.17.0.2", 80),
            Fixture.registration(.udp, host: "0.0.0.0", 80, container: "172.17.0.2", 80),
            Fixture.registration(host: "127.0.0.1", 80, container: "172.17.0.2", 80),
            Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80),
            Fixture.registration(host: "0.0.0.0", 80, container: "172.17.0.2", 80),
            Fixture.registration(host: "::1", 1, container: "172.17.0.2", 80),
        ]
        let registry = Registry(inputs)
        #expect(registry.registrations.map(\.key.description) == [
            "tcp 0.0.0.0:80", "udp 0.0.0.0:80", "tcp 0.0.0.0:8080", "tcp 127.0.0.1:80", "tcp [::]:80", "tcp [::1]:1",
        ])
        #expect(Registry(inputs.reversed()) == registry)
    }

    @Test func initialiserKeepsTheLastOfAKey() throws {
        let old = try Fixture.registration(host: "0.0.0.0", 80, container: "172.17.0.2", 80)
        let new = try Fixture.registration(host: "0.0.0.0", 80, container: "172.17.0.3", 80)
        #expect(Registry([old, new]).registrations == [new])
    }
}
