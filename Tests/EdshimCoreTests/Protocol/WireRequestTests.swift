@testable import EdshimCore
import Testing

/// Every request encodes to one JSON line and decodes back to itself.
@Suite("WireRequest encoding and decoding")
struct WireRequestTests {
    static func requests() throws -> [WireRequest] {
        let key = try Fixture.key("0.0.0.0", 8080)
        let container = try Fixture.endpoint("172.17.0.2", 80)
        return [
            .register(RegisterRequest(key: key, container: container)),
            .register(RegisterRequest(key: key, container: container, heldSocketInode: 123_456)),
            .register(RegisterRequest(key: try Fixture.key("::", 443), container: try Fixture.endpoint("fd00::2", 8443), heldSocketInode: UInt64.max, onBehalfOf: 31_337)),
            .register(RegisterRequest(key: try Fixture.key(.udp, "127.0.0.1", 53), container: container, onBehalfOf: 1)),
            .deregister(key),
            .deregister(try Fixture.key(.sctp, "::1", 9)),
            .list,
            .lookup(key),
            .lookup(try Fixture.key("::", 443)),
        ]
    }

    @Test func everyRequestRoundTrips() throws {
        for request in try Self.requests() {
            #expect(try WireRequest.decode(request.encoded) == request)
        }
    }

    @Test func everyRequestIsOneLine() throws {
        for request in try Self.requests() {
            let line = request.encoded
            #expect(line.last == UInt8(ascii: "\n"))
            #expect(line.filter { $0 == UInt8(ascii: "\n") }.count == 1)
            #expect(line.count <= WireProtocol.maximumRequestBytes)
        }
    }

    @Test func registerHasTheDocumentedFields() throws {
        let request = WireRequest.register(RegisterRequest(key: try Fixture.key("0.0.0.0", 8080), container: try Fixture.endpoint("172.17.0.2", 80)))
        #expect(Fixture.text(request.encoded) == #"{"v":1,"op":"register","proto":"tcp","host_ip":"0.0.0.0","host_port":8080,"container_ip":"172.17.0.2","container_port":80}"# + "\n")
    }

    @Test func optionalFieldsAppearOnlyWhenSet() throws {
        let key = try Fixture.key("::", 8080)
        let container = try Fixture.endpoint("172.17.0.2", 80)
        let bare = try JSONParser.parse(WireRequest.register(RegisterRequest(key: key, container: container)).encoded.dropLast().map { $0 })
        let full = try JSONParser.parse(WireRequest.register(RegisterRequest(key: key, container: container, heldSocketInode: 77, onBehalfOf: 88)).encoded.dropLast().map { $0 })
        let bareObject = try #require(bare.objectValue)
        let fullObject = try #require(full.objectValue)
        #expect(bareObject["held_socket_inode"] == nil && bareObject["on_behalf_of"] == nil)
        #expect(fullObject["held_socket_inode"] == .number("77"))
        #expect(fullObject["on_behalf_of"] == .number("88"))
        #expect(fullObject["host_ip"] == .string("::"))
    }

    @Test func decodesWithoutTrailingNewlineAndWithNullOptionals() throws {
        let line = Fixture.bytes(#"{"v":1,"op":"register","proto":"tcp","host_ip":"::","host_port":80,"container_ip":"10.0.0.2","container_port":8080,"held_socket_inode":null,"on_behalf_of":null}"#)
        let expected = WireRequest.register(RegisterRequest(key: try Fixture.key("::", 80), container: try Fixture.endpoint("10.0.0.2", 8080)))
        #expect(try WireRequest.decode(line) == expected)
    }

    @Test func canonicalisesAddressesItDecodes() throws {
        let line = Fixture.bytes(#"{"v":1,"op":"deregister","proto":"tcp","host_ip":"0:0::0","host_port":80}"#)
        #expect(try WireRequest.decode(line) == .deregister(try Fixture.key("::", 80)))
    }

    /// Newer clients may add fields; they are ignored, whatever their shape.
    @Test(arguments: [
        #"{"v":1,"op":"list","client":"edshim 9.9"}"#,
        #"{"trace":{"id":"abc","spans":[1,2,{"x":null}]},"v":1,"op":"list"}"#,
        #"{"v":1,"extra":[[],{},[{"deep":[true,false]}]],"op":"list","more":3.5e3}"#,
        #"{"v":1,"op":"list","proto":"not-a-proto","host_port":"ignored for list"}"#,
    ])
    func ignoresUnknownFields(_ line: String) throws {
        #expect(try WireRequest.decode(Fixture.bytes(line)) == .list)
    }

    @Test func ignoresUnknownFieldsInRegister() throws {
        let line = Fixture.bytes(#"{"v":1,"op":"register","labels":{"a":["b"]},"proto":"tcp","host_ip":"0.0.0.0","host_port":8080,"container_ip":"172.17.0.2","container_port":80,"future":{"nested":{"deeper":[1,{"x":"y"}]}}}"#)
        let expected = WireRequest.register(RegisterRequest(key: try Fixture.key("0.0.0.0", 8080), container: try Fixture.endpoint("172.17.0.2", 80)))
        #expect(try WireRequest.decode(line) == expected)
    }
}
