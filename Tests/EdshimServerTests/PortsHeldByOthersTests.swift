import EdshimCore
@testable import EdshimServer
import Synchronization
import Testing

@Suite("PortsHeldByOthers")
struct PortsHeldByOthersTests {
    static func registration(_ port: UInt16, owner pid: Int32) -> Registration {
        Registration(
            key: RegistrationKey(proto: .tcp, host: SocketEndpoint(ip: .anyIPv4, port: port)),
            container: SocketEndpoint(ip: IPAddress(bytes: [172, 17, 0, 2])!, port: 80),
            owner: Owner(pid: pid, startTime: 1),
            metadata: ContainerMetadata(service: nil),
            mode: .http
        )
    }

    static func socket(_ port: UInt16, inode: UInt64) -> ListeningSocket {
        ListeningSocket(endpoint: SocketEndpoint(ip: .anyIPv4, port: port), inode: inode)
    }

    @Test("a registered port held by a program other than Envoy or its shim is found, with the program; /proc is read again only when the sockets change")
    func findsOtherPrograms() {
        let registrations = [Self.registration(8080, owner: 10), Self.registration(8081, owner: 11), Self.registration(8082, owner: 12)]
        let holders: [UInt64: PortHolders.Holder] = [
            1: PortHolders.Holder(pid: 50, name: "envoy", addresses: [SocketEndpoint(ip: .anyIPv4, port: 8080)]),
            2: PortHolders.Holder(pid: 60, name: "nginx", addresses: [SocketEndpoint(ip: .anyIPv4, port: 8081)]),
            3: PortHolders.Holder(pid: 12, name: "edshim", addresses: [SocketEndpoint(ip: .anyIPv4, port: 8082)]),
        ]
        let lookups = Mutex(0)
        var tracker = PortsHeldByOthers()
        tracker.holding = { sockets in
            lookups.withLock { $0 += 1 }
            return sockets.compactMap { holders[$0.inode] }
        }
        let table = [Self.socket(8080, inode: 1), Self.socket(8081, inode: 2), Self.socket(8082, inode: 3), Self.socket(9999, inode: 4)]
        let held = tracker.update(registrations, listening: table)
        #expect(Set(held.keys) == [registrations[1].key], "\(held)")
        #expect(held[registrations[1].key]?.map(\.description) == ["nginx (pid 60)"])
        #expect(tracker.update(registrations, listening: table).keys.count == 1)
        #expect(lookups.withLock { $0 } == 1, "the same sockets: /proc not read again")

        // The program let go: Envoy listens there now.
        var after = table
        after[1] = Self.socket(8081, inode: 5)
        let envoyAgain = PortHolders.Holder(pid: 50, name: "envoy", addresses: [SocketEndpoint(ip: .anyIPv4, port: 8081)])
        tracker.holding = { sockets in
            lookups.withLock { $0 += 1 }
            return sockets.compactMap { $0.inode == 5 ? envoyAgain : holders[$0.inode] }
        }
        #expect(tracker.update(registrations, listening: after).isEmpty)
        #expect(lookups.withLock { $0 } == 2)
        // A port no longer registered is not reported, though its holder was.
        tracker.holding = { sockets in sockets.compactMap { holders[$0.inode] } }
        #expect(tracker.update([registrations[0]], listening: table).isEmpty)
    }
}
