@testable import EdshimCore
import Testing

@Suite("IPAddress")
struct IPAddressTests {
    /// Text that parses, and its canonical form.
    static let canonicalForms: [(String, String)] = [
        ("0.0.0.0", "0.0.0.0"),
        ("127.0.0.1", "127.0.0.1"),
        ("172.17.0.2", "172.17.0.2"),
        ("255.255.255.255", "255.255.255.255"),
        ("::", "::"),
        ("0::0", "::"),
        ("0:0::0", "::"),
        ("0:0:0:0:0:0:0:0", "::"),
        ("::1", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("FD00:0:0:0:0:0:0:2", "fd00::2"),
        ("2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
    ]

    @Test(arguments: canonicalForms)
    func printsCanonically(_ text: String, _ canonical: String) throws {
        let address = try #require(IPAddress(text))
        #expect(address.description == canonical)
        #expect(IPAddress(canonical) == address)
    }

    @Test(arguments: [
        "", " ", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.-4", "01.2.3.4", " 1.2.3.4", "1.2.3.4 ",
        "localhost", "example.com", "[::1]", "::1%lo", "fe80::1%eth0", "10.0.0.0/8", "::/0",
        ":::", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", "1.2.3.4:80",
    ])
    func refusesNonAddresses(_ text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func familiesAndUnspecified() throws {
        let v4 = try Fixture.address("10.1.2.3")
        let v6 = try Fixture.address("fd00::2")
        #expect(!v4.isIPv6 && v4.bytes == [10, 1, 2, 3])
        #expect(v6.isIPv6 && v6.bytes.count == 16)
        #expect(try Fixture.address("::ffff:10.1.2.3").isIPv6, "an IPv4-mapped address is still IPv6")
        #expect(IPAddress.anyIPv4.isUnspecified && IPAddress.anyIPv6.isUnspecified)
        #expect(!IPAddress.loopbackIPv4.isUnspecified && !v6.isUnspecified)
        #expect(IPAddress.anyIPv4 == (try Fixture.address("0.0.0.0")))
        #expect(IPAddress.anyIPv6 == (try Fixture.address("::")))
        #expect(IPAddress.loopbackIPv4 == (try Fixture.address("127.0.0.1")))
        #expect(IPAddress.loopbackIPv6 == (try Fixture.address("::1")))
    }

    @Test func dialableReplacesOnlyUnspecified() throws {
        #expect(IPAddress.anyIPv4.dialable == .loopbackIPv4)
        #expect(IPAddress.anyIPv6.dialable == .loopbackIPv6)
        let specific = try Fixture.address("192.168.1.5")
        #expect(specific.dialable == specific)
    }

    @Test func rawBytes() throws {
        #expect(IPAddress(bytes: [192, 168, 0, 1])?.description == "192.168.0.1")
        #expect(IPAddress(bytes: [UInt8](repeating: 0, count: 15) + [1]) == .loopbackIPv6)
        #expect(IPAddress(bytes: []) == nil)
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
        #expect(IPAddress(bytes: [UInt8](repeating: 0, count: 5)) == nil)
        #expect(IPAddress(bytes: [UInt8](repeating: 0, count: 17)) == nil)
    }

    @Test func ordersIPv4BeforeIPv6ThenByBytes() throws {
        let sorted = try ["::1", "10.0.0.1", "::", "9.255.255.255", "fd00::1", "0.0.0.0"].map { try Fixture.address($0) }.sorted()
        #expect(sorted.map(\.description) == ["0.0.0.0", "9.255.255.255", "10.0.0.1", "::", "::1", "fd00::1"])
    }
}
