import EdshimCore
@testable import EdshimServer
import Testing

@Suite("PendingLabels")
struct PendingLabelsTests {
    static let web = ContainerMetadata(service: "web", containerID: String(repeating: "a", count: 64))

    static func registration(port: UInt16, container: String, metadata: ContainerMetadata = .unknown) throws -> Registration {
        Registration(
            key: RegistrationKey(proto: .tcp, host: SocketEndpoint(ip: .anyIPv4, port: port)),
            container: SocketEndpoint(ip: try #require(IPAddress(container)), port: 80),
            owner: Owner(pid: 4242, startTime: 1),
            metadata: metadata,
            mode: .http
        )
    }

    @Test("while Docker cannot be asked, a registration takes the labels of the one it replaces only for the same container")
    func labelsWhileUnreachable() throws {
        let replaced = try Self.registration(port: 8080, container: "172.17.0.2", metadata: Self.web)
        let sameContainer = replaced.container
        let otherContainer = SocketEndpoint(ip: try #require(IPAddress("172.17.0.3")), port: 80)
        #expect(PendingLabels.labels(from: .unreachable, replacing: replaced, for: sameContainer) == Self.web)
        #expect(PendingLabels.labels(from: .unreachable, replacing: replaced, for: otherContainer) == .unknown)
        #expect(PendingLabels.labels(from: .unreachable, replacing: nil, for: sameContainer) == .unknown)
        let api = ContainerMetadata(service: "api")
        #expect(PendingLabels.labels(from: .known(api), replacing: replaced, for: sameContainer) == api, "Docker's answer wins")
        #expect(PendingLabels.labels(from: .known(.unknown), replacing: replaced, for: sameContainer) == .unknown, "no container has the address any more")
    }

    @Test("a key waits from an unreachable answer to a known one; the refresher is told when the first key starts waiting")
    func waitingKeys() async throws {
        var pending = PendingLabels(restoring: [])
        let first = try Self.registration(port: 8080, container: "172.17.0.2").key
        let second = try Self.registration(port: 8081, container: "172.17.0.3").key
        pending.note(first, answer: .unreachable)
        pending.note(second, answer: .unreachable)
        pending.note(second, answer: .known(Self.web))
        #expect(pending.keys == [first])
        var notices = pending.notices.makeAsyncIterator()
        #expect(await notices.next() != nil, "one notice for the first waiting key")

        #expect(pending.takeAll() == [first])
        #expect(pending.keys.isEmpty)
        pending.note(first, answer: .unreachable)
        #expect(pending.keys == [first], "asked again and still unreachable: it waits on")
    }

    @Test("a restarted server asks once about every registration it restored")
    func restoredRegistrationsWait() throws {
        let restored = [
            try Self.registration(port: 8080, container: "172.17.0.2", metadata: Self.web),
            try Self.registration(port: 8081, container: "172.17.0.3"),
        ]
        #expect(PendingLabels(restoring: restored).keys == Set(restored.map(\.key)))
        #expect(PendingLabels(restoring: []).keys.isEmpty)
    }
}
