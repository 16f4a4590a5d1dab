#if canImport(Glibc)
import Glibc
#endif
import CEdshimLinux
@testable import EdshimCore
import Foundation
import Testing

@Suite("ListenTable")
struct ListenTableTests {
    // As the kernel prints them (x86-64, little endian): addresses are 32-bit words
    // in host byte order, ports plain hex, trailing padding included.
    static let tcp = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     
           0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 40001 1 0000000000000000 100 0 0 10 0                     
           1: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 40002 1 0000000000000000 100 0 0 10 0                     
           2: 0100007F:0050 0100007F:D6A2 01 00000000:00000000 00:00000000 00000000     0        0 40003 1 0000000000000000 20 4 30 10 -1                    
           3: 020011AC:C350 0100007F:1F90 01 00000000:00000000 02:000A7B2F 00000000     0        0 40004 2 0000000000000000 20 4 0 10 -1                     
           4: 0100007F:1F91 0100007F:0050 06 00000000:00000000 03:00001562 00000000     0        0 0 3 0000000000000000                                      

        """

    static let tcp6 = """
          sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 60001 1 0000000000000000 100 0 0 10 0
           1: 00000000000000000000000001000000:26AD 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 60002 1 0000000000000000 100 0 0 10 0
           2: 00000000000000000000000001000000:26AD 00000000000000000000000001000000:E3C4 01 00000000:00000000 00:00000000 00000000     0        0 60003 1 0000000000000000 20 4 31 10 -1
           3: 000080FE0000000002FEFF020F0E0D0C:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 60004 1 0000000000000000 100 0 0 10 0

        """

    @Test func parsesIPv4ListenRowsOnly() throws {
        let sockets = ListenTable.parse(Fixture.bytes(Self.tcp), ipv6: false)
        #expect(sockets == [
            ListeningSocket(endpoint: try Fixture.endpoint("0.0.0.0", 8080), inode: 40001),
            ListeningSocket(endpoint: try Fixture.endpoint("127.0.0.1", 80), inode: 40002),
        ])
    }

    @Test func parsesIPv6ListenRowsOnly() throws {
        let sockets = ListenTable.parse(Fixture.bytes(Self.tcp6), ipv6: true)
        #expect(sockets == [
            ListeningSocket(endpoint: try Fixture.endpoint("::", 8080), inode: 60001),
            ListeningSocket(endpoint: try Fixture.endpoint("::1", 9901), inode: 60002),
            ListeningSocket(endpoint: try Fixture.endpoint("fe80::2ff:fe02:c0d:e0f", 22), inode: 60004),
        ])
    }

    @Test func skipsRowsThatDoNotParse() throws {
        let text = """
              sl  local_address rem_address   st
               0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
               1: 0000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
               2: 0000000G:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1
               3: 00000000:XYZ 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1
               4: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 notanumber 1
               5: 00000000:1F90 00000000:0000 0A
               6: 00000000000000000000000000000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1
            """
        let sockets = ListenTable.parse(Fixture.bytes(text), ipv6: false)
        #expect(sockets == [ListeningSocket(endpoint: try Fixture.endpoint("0.0.0.0", 8080), inode: 1)])
        #expect(ListenTable.parse([], ipv6: false).isEmpty)
        #expect(ListenTable.parse(Fixture.bytes("header only\n"), ipv6: true).isEmpty)
    }

    @Test func readsBothFilesUnderARoot() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("edshim-listen-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try Data(Self.tcp.utf8).write(to: root.appendingPathComponent("tcp"))
        try Data(Self.tcp6.utf8).write(to: root.appendingPathComponent("tcp6"))
        let sockets = ListenTable.readProcNet(root: root.path)
        #expect(sockets.map(\.inode) == [40001, 40002, 60001, 60002, 60004])

        try FileManager.default.removeItem(at: root.appendingPathComponent("tcp6"))
        #expect(ListenTable.readProcNet(root: root.path).map(\.inode) == [40001, 40002], "a missing tcp6 (IPv6 disabled) is no error")
    }

    /// The kernel lists the sockets this test listens on, IPv4 and IPv6, with their
    /// inodes — through the socket diagnostics and through /proc/net alike — and not
    /// the connections to them.
    @Test func seesRealListeningSockets() throws {
        let v4 = try Self.listen(on: "127.0.0.1")
        let v6 = try Self.listen(on: "::1")
        defer { close(v4.fd); close(v6.fd) }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        try #require(v4.socket.endpoint.withSocketAddress { connect(client, $0, $1) } == 0)

        let diagnostics = try ListenTable.readDiagnostics().get()
        #expect(diagnostics.contains(v4.socket) && diagnostics.contains(v6.socket), "\(diagnostics)")
        #expect(diagnostics.filter { $0.endpoint == v4.socket.endpoint } == [v4.socket], "the connection is not listed")
        // Other tests open and close sockets meanwhile: compare this test's alone.
        let mine: Set<SocketEndpoint> = [v4.socket.endpoint, v6.socket.endpoint]
        #expect(Set(diagnostics.filter { mine.contains($0.endpoint) }) == Set(ListenTable.readProcNet().filter { mine.contains($0.endpoint) }),
                "both sources give the same entries")
        #expect(ListenTable.unavailableDiagnostics() == nil)
        #expect(ListenTable.read().contains(v4.socket))
    }

    /// More listening sockets than the first read has room for are all listed.
    @Test func listsMoreSocketsThanItsFirstGuess() throws {
        let listening = try (0..<150).map { _ in try Self.listen(on: "127.0.0.1") }
        defer { for entry in listening { close(entry.fd) } }
        let table = Set(try ListenTable.readDiagnostics().get())
        #expect(listening.allSatisfy { table.contains($0.socket) }, "\(listening.filter { !table.contains($0.socket) }.count) missing")
    }

    /// A read on some ports lists exactly the sockets listening on those ports, of both
    /// families, as the whole table does (the kernel filters them): for one port, for
    /// several (the first, a middle and the last of the filter each matching), for
    /// ports nothing listens on, and for more ports than the kernel filter is built for.
    @Test func readsTheSocketsOnSomePortsAlone() throws {
        let listening = try (0..<8).map { index in try Self.listen(on: index % 2 == 0 ? "127.0.0.1" : "::1") }
        defer { for entry in listening { close(entry.fd) } }
        let ports = listening.map(\.socket.endpoint.port)
        let nobody = try Self.freePorts(3, avoiding: Set(ports))
        func expectSame(_ asked: Set<UInt16>, sourceLocation: SourceLocation = #_sourceLocation) {
            // The kernel's filter itself, not the /proc/net fallback a refused one would get.
            let read = Set(asked.count > Int(EDSHIM_DIAG_MOST_PORTS) ? ListenTable.read(onPorts: asked) : (try? ListenTable.readDiagnostics(onPorts: asked).get()) ?? [])
            let expected = Set(listening.map(\.socket).filter { asked.contains($0.endpoint.port) })
            // Every socket of this test on the ports asked, and nothing on another port.
            // (Tests running alongside may listen on a port found free and asked here:
            // theirs are on an asked port, and count.)
            #expect(expected.isSubset(of: read), "asked \(asked.sorted()): \(read)", sourceLocation: sourceLocation)
            #expect(read.allSatisfy { asked.contains($0.endpoint.port) }, "asked \(asked.sorted()): \(read)", sourceLocation: sourceLocation)
        }
        expectSame([ports[0]])
        expectSame([ports[1]])
        expectSame([ports[0], ports[3], ports[7]])
        expectSame(Set(ports))
        expectSame([nobody[0], ports[5], nobody[1]])
        expectSame(Set(nobody))
        #expect(ListenTable.read(onPorts: []).isEmpty)
        #expect(throws: Never.self) { try ListenTable.readDiagnostics(onPorts: Set(ports)).get() }
        // Past the filter's size: the whole table, filtered here.
        let many = Set(try Self.freePorts(Int(EDSHIM_DIAG_MOST_PORTS) + 20, avoiding: Set(ports))).union([ports[2], ports[4]])
        expectSame(many)
    }

    /// `count` ports nothing listens on now, none of `avoiding`.
    static func freePorts(_ count: Int, avoiding: Set<UInt16>) throws -> [UInt16] {
        let listening = Set(try ListenTable.readDiagnostics().get().map(\.endpoint.port)).union(avoiding)
        return Array((40_000...60_000).lazy.map(UInt16.init).filter { !listening.contains($0) }.prefix(count))
    }

    /// Whether an IPv6 socket takes IPv4 too is read from the socket diagnostics: such a
    /// socket on `::` keeps IPv4 listeners off its port, a v6-only one does not.
    @Test func seesWhetherAnIPv6SocketTakesIPv4() throws {
        let dualStack = try Self.listen(on: "::", v6Only: false)
        let v6Only = try Self.listen(on: "::", v6Only: true)
        defer { close(dualStack.fd); close(v6Only.fd) }
        let diagnostics = try ListenTable.readDiagnostics().get()
        #expect(diagnostics.contains(dualStack.socket) && diagnostics.contains(v6Only.socket), "\(diagnostics.filter { $0.endpoint.ip.isUnspecified })")
        #expect(dualStack.socket.acceptsIPv4 && !v6Only.socket.acceptsIPv4)
        #expect(dualStack.socket.keepsFromBinding(try Fixture.endpoint("0.0.0.0", dualStack.socket.endpoint.port)))
        #expect(!v6Only.socket.keepsFromBinding(try Fixture.endpoint("0.0.0.0", v6Only.socket.endpoint.port)))
    }

    @Test("which listeners keep a bind off", arguments: [
        // listening, takes IPv4, bind, kept off
        ("::", true, "0.0.0.0", true),
        ("::", true, "127.0.0.1", true),
        ("::", false, "0.0.0.0", false),
        ("::", true, "::1", true),
        ("::1", true, "127.0.0.1", false),
        ("::ffff:127.0.0.1", true, "127.0.0.1", true),
        ("::ffff:127.0.0.1", true, "0.0.0.0", true),
        ("::ffff:127.0.0.1", true, "127.0.0.2", false),
        ("::ffff:127.0.0.1", false, "127.0.0.1", false),
        ("0.0.0.0", false, "127.0.0.1", true),
        ("0.0.0.0", false, "::", false),
    ])
    func keepsFromBinding(listening: String, takesIPv4: Bool, bind: String, keptOff: Bool) throws {
        let socket = ListeningSocket(endpoint: try Fixture.endpoint(listening, 8080), inode: 1, acceptsIPv4: takesIPv4)
        #expect(socket.keepsFromBinding(try Fixture.endpoint(bind, 8080)) == keptOff)
        #expect(!socket.keepsFromBinding(try Fixture.endpoint(bind, 8081)), "another port is free")
    }

    /// A socket listening on a port the kernel picks on `address`, and what the table should say of it.
    static func listen(on address: String, v6Only: Bool = true) throws -> (fd: Int32, socket: ListeningSocket) {
        let requested = try Fixture.endpoint(address, 0)
        let fd = socket(requested.family, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var flag: Int32 = v6Only ? 1 : 0
        if requested.ip.isIPv6 { try #require(setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &flag, 4) == 0) }
        try #require(requested.withSocketAddress { bind(fd, $0, $1) } == 0)
        try #require(Glibc.listen(fd, 1) == 0)
        let endpoint = try #require(SocketEndpoint.local(of: fd))
        #expect(endpoint.ip == requested.ip && endpoint.port != 0)
        var status = stat()
        try #require(fstat(fd, &status) == 0)
        let takesIPv4 = requested.ip.isIPv6 && !v6Only
        return (fd, ListeningSocket(endpoint: endpoint, inode: UInt64(status.st_ino), acceptsIPv4: takesIPv4))
    }
}
