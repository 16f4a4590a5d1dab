@testable import EdshimCore
import Testing

/// FuzzWireProtocol finding (Fuzz/Corpus/FuzzWireProtocol/finding-nul-in-address.json):
/// `"172.17.0.2\u0000"` parsed as 172.17.0.2, because `inet_pton` reads a C string
/// and never saw what followed the NUL. A peer could register an address text that
/// was not an address.
@Suite("Fuzz finding: NUL in address text")
struct AddressNULFindingTests {
    /// The input libFuzzer saved, byte for byte.
    static let input = #"{"v":1,"np":"register","proto":"tcp","hosontainer_ip":"172.17.0.2","container_port":80,"hel_ip":"172.17.0.2\u0000","container_port":80,"held_socke4_inode":-234.6}"# + "\n"

    @Test func replaysTheFinding() throws {
        let value = try JSONParser.parse(Array(Self.input.utf8.dropLast()))
        let text = try #require(value.objectValue?["hel_ip"]?.stringValue)
        #expect(text == "172.17.0.2\u{0}")
        #expect(IPAddress(text) == nil)
    }

    @Test(arguments: ["172.17.0.2\u{0}", "0.0.0.0\u{0}evil", "\u{0}1.2.3.4", "::1\u{0}", "fd00::2\u{0}:1"])
    func addressTextWithANULIsRefused(_ text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func registerWithANULInTheContainerAddressIsRefused() {
        let line = #"{"v":1,"op":"register","proto":"tcp","host_ip":"0.0.0.0","host_port":8080,"container_ip":"172.17.0.2\u0000","container_port":80}"#
        #expect(throws: WireError.self) { try WireRequest.decode(Array(line.utf8)) }
    }
}
