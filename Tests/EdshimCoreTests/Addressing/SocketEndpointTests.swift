#if canImport(Glibc)
import Glibc
#endif
@testable import EdshimCore
import Testing

@Suite("SocketEndpoint")
struct SocketEndpointTests {
    @Test(arguments: [
        ("127.0.0.1:9901", "127.0.0.1", UInt16(9901)),
        ("0.0.0.0:1", "0.0.0.0", 1),
        ("[::1]:9901", "::1", 9901),
        ("[::]:65535", "::", 65535),
        ("[fd00:0::2]:80", "fd00::2", 80),
    ])
    func parsesHostAndPort(_ text: String, _ ip: String, _ port: UInt16) throws {
        let endpoint = try #require(SocketEndpoint(parsing: text))
        #expect(endpoint == (try Fixture.endpoint(ip, port)))
    }

    @Test(arguments: [
        "", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:http",
        "localhost:80", "::1:9901", "::1", "[::1]", "[::1]:", "[::1]9901", "[::1:9901", "::1]:9901",
        "[::1]:0", "[::1]:99999", "[localhost]:80", "1.2.3.4:80:80",
    ])
    func refusesBadForms(_ text: String) {
        #expect(SocketEndpoint(parsing: text) == nil)
    }

    @Test func descriptionBracketsIPv6AndParsesBack() throws {
        let v4 = try Fixture.endpoint("10.0.0.1", 80)
        let v6 = try Fixture.endpoint("0:0::1", 443)
        #expect(v4.description == "10.0.0.1:80")
        #expect(v6.description == "[::1]:443")
        #expect(SocketEndpoint(parsing: v4.description) == v4)
        #expect(SocketEndpoint(parsing: v6.description) == v6)
    }

    /// (a, b, conflict): whether two listening sockets could not coexist.
    @Test(arguments: [
        ("0.0.0.0", UInt16(80), "127.0.0.1", UInt16(80), true),
        ("127.0.0.1", 80, "0.0.0.0", 80, true),
        ("127.0.0.1", 80, "127.0.0.1", 80, true),
        ("::", 80, "::1", 80, true),
        ("::", 80, "::", 80, true),
        ("0.0.0.0", 80, "0.0.0.0", 80, true),
        // Families never conflict: IPv6 listeners are v6-only.
        ("0.0.0.0", 80, "::", 80, false),
        ("127.0.0.1", 80, "::1", 80, false),
        // Different ports or different specific addresses.
        ("0.0.0.0", 80, "0.0.0.0", 81, false),
        ("127.0.0.1", 80, "10.0.0.1", 80, false),
        ("::1", 80, "fd00::1", 80, false),
    ])
    func bindConflicts(_ a: String, _ aPort: UInt16, _ b: String, _ bPort: UInt16, _ conflict: Bool) throws {
        let first = try Fixture.endpoint(a, aPort)
        let second = try Fixture.endpoint(b, bPort)
        #expect(first.bindConflicts(with: second) == conflict)
        #expect(second.bindConflicts(with: first) == conflict, "conflict is symmetric")
    }

    @Test func ordersByAddressThenPort() throws {
        let sorted = try [("::", UInt16(1)), ("10.0.0.1", 80), ("10.0.0.1", 8), ("0.0.0.0", 9000)]
            .map { try Fixture.endpoint($0.0, $0.1) }
            .sorted()
        #expect(sorted.map(\.description) == ["0.0.0.0:9000", "10.0.0.1:8", "10.0.0.1:80", "[::]:1"])
    }

    @Test(arguments: ["127.0.0.1", "::1", "fd00::2", "0.0.0.0"])
    func kernelSocketAddressRoundTrips(_ ip: String) throws {
        let endpoint = try Fixture.endpoint(ip, 8080)
        let decoded = endpoint.withSocketAddress { pointer, length -> SocketEndpoint? in
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { raw in
                raw.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: Int(length)))
            }
            return SocketEndpoint(storage: storage)
        }
        #expect(decoded == endpoint)
        #expect(endpoint.family == (endpoint.ip.isIPv6 ? AF_INET6 : AF_INET))
    }
}
