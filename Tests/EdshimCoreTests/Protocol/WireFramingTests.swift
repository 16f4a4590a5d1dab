@testable import EdshimCore
import Testing

/// Malformed request lines: each refused with the `WireError` code a client can act on.
@Suite("WireRequest.decode refuses malformed frames")
struct WireFramingTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var line: String
        var code: WireError.Code
        var testDescription: String { line.isEmpty ? "(empty line)" : line }
    }

    static let register = #""op":"register","proto":"tcp","host_ip":"0.0.0.0","container_ip":"172.17.0.2","container_port":80"#

    static let cases: [Case] = [
        // Not JSON, or not an object.
        Case(line: "", code: .badRequest),
        Case(line: "\n", code: .badRequest),
        Case(line: "register tcp 0.0.0.0 8080", code: .badRequest),
        Case(line: #"{"v":1,"op":"list""#, code: .badRequest),
        Case(line: #"{"v":1,"op":"list"}{"v":1,"op":"list"}"#, code: .badRequest),
        Case(line: #"[{"v":1,"op":"list"}]"#, code: .badRequest),
        Case(line: #""list""#, code: .badRequest),
        Case(line: "null", code: .badRequest),
        Case(line: "1", code: .badRequest),
        // The version.
        Case(line: #"{"op":"list"}"#, code: .badRequest),
        Case(line: #"{"v":"1","op":"list"}"#, code: .badRequest),
        Case(line: #"{"v":null,"op":"list"}"#, code: .badRequest),
        Case(line: #"{"v":1.5,"op":"list"}"#, code: .badRequest),
        Case(line: #"{"v":2,"op":"list"}"#, code: .unsupportedVersion),
        Case(line: #"{"v":99,"op":"register"}"#, code: .unsupportedVersion),
        Case(line: #"{"v":0,"op":"list"}"#, code: .unsupportedVersion),
        Case(line: #"{"v":99999999999999999999,"op":"list"}"#, code: .unsupportedVersion),
        Case(line: #"{"v":-99999999999999999999,"op":"list"}"#, code: .unsupportedVersion),
        // The operation.
        Case(line: #"{"v":1}"#, code: .badRequest),
        Case(line: #"{"v":1,"op":5}"#, code: .badRequest),
        Case(line: #"{"v":1,"op":"frobnicate"}"#, code: .unknownOperation),
        Case(line: #"{"v":1,"op":"LIST"}"#, code: .unknownOperation),
        // Fields of the wrong type or range.
        Case(line: #"{"v":1,"#.appending(register).appending(#","host_port":0}"#), code: .badRequest),
        Case(line: #"{"v":1,"#.appending(register).appending(#","host_port":65536}"#), code: .badRequest),
        Case(line: #"{"v":1,"#.appending(register).appending(#","host_port":-1}"#), code: .badRequest),
        Case(line: #"{"v":1,"#.appending(register).appending(#","host_port":80.5}"#), code: .badRequest),
        Case(line: #"{"v":1,"#.appending(register).appending(#","host_port":"8080"}"#), code: .badRequest),
        Case(line: #"{"v":1,"#.appending(register).appending(#"}"#), code: .badRequest),
        Case(line: #"{"v":1,"#.appending(register).appending(#","host_port":8080,"held_socket_inode":"12"}"#), code: .badRequest),
        Case(line: #"{"v":1,"#.appending(register).appending(#","host_port":8080,"held_socket_inode":-12}"#), code: .badRequest),
        Case(line: #"{"v":1,"#.appending(register).appending(#","host_port":8080,"on_behalf_of":true}"#), code: .badRequest),
        Case(line: #"{"v":1,"#.appending(register).appending(#","host_port":8080,"on_behalf_of":4294967296}"#), code: .badRequest),
        Case(line: #"{"v":1,"#.appending(register).appending(#","host_port":8080,"on_behalf_of":0}"#), code: .badRequest),
        Case(line: #"{"v":1,"#.appending(register).appending(#","host_port":8080,"on_behalf_of":-1}"#), code: .badRequest),
        Case(line: #"{"v":1,"op":"register","proto":"icmp","host_ip":"0.0.0.0","host_port":8080,"container_ip":"172.17.0.2","container_port":80}"#, code: .badRequest),
        Case(line: #"{"v":1,"op":"register","proto":"tcp","host_ip":"localhost","host_port":8080,"container_ip":"172.17.0.2","container_port":80}"#, code: .badRequest),
        Case(line: #"{"v":1,"op":"register","proto":"tcp","host_ip":"0.0.0.0","host_port":8080,"container_ip":17,"container_port":80}"#, code: .badRequest),
        Case(line: #"{"v":1,"op":"register","proto":"tcp","host_ip":"0.0.0.0","host_port":8080,"container_ip":"172.17.0.2","container_port":0}"#, code: .badRequest),
        Case(line: #"{"v":1,"op":"deregister","proto":"tcp","host_ip":"0.0.0.0"}"#, code: .badRequest),
        Case(line: #"{"v":1,"op":"deregister","proto":["tcp"],"host_ip":"0.0.0.0","host_port":80}"#, code: .badRequest),
    ]

    @Test(arguments: cases)
    func refuses(_ testCase: Case) throws {
        let error = try #require(throws: WireError.self) { try WireRequest.decode(Fixture.bytes(testCase.line)) }
        #expect(error.code == testCase.code, "\(error)")
        #expect(!error.message.isEmpty)
    }

    @Test("a version below 1 is called what it is, not a reason to upgrade the server")
    func versionBelowOne() throws {
        let error = try #require(throws: WireError.self) { try WireRequest.decode(Fixture.bytes(#"{"v":0,"op":"list"}"#)) }
        #expect(error.message.contains("protocol version 0 does not exist"), "\(error)")
        #expect(!error.message.contains("upgrade"), "\(error)")
        let newer = try #require(throws: WireError.self) { try WireRequest.decode(Fixture.bytes(#"{"v":2,"op":"list"}"#)) }
        #expect(newer.message.contains("upgrade edshim server"), "\(newer)")
    }

    @Test("a version that is there but not a whole number is called that, not missing", arguments: [#""1""#, "1.0", "null", "true"])
    func versionNotAWholeNumber(_ version: String) throws {
        let error = try #require(throws: WireError.self) { try WireRequest.decode(Fixture.bytes(#"{"v":"# + version + #","op":"list"}"#)) }
        #expect(error.code == .badRequest)
        #expect(error.message.contains("must be a whole number") && error.message.contains(version), "\(error)")
        #expect(!error.message.contains("missing"), "\(error)")
    }

    @Test("an op that is there but not a string is called that, not missing", arguments: ["5", "null", #"["list"]"#])
    func opNotAString(_ op: String) throws {
        let error = try #require(throws: WireError.self) { try WireRequest.decode(Fixture.bytes(#"{"v":1,"op":"# + op + "}")) }
        #expect(error.code == .badRequest)
        #expect(error.message == #""op" must be a string (register, deregister, list, lookup)"#, "\(error)")
    }

    @Test("a PID past Int32 is called out of range, not \"not an integer\"")
    func onBehalfOfOutOfRange() throws {
        let error = try #require(throws: WireError.self) {
            try WireRequest.decode(Fixture.bytes(#"{"v":1,"# + Self.register + #","host_port":8080,"on_behalf_of":1099511627776}"#))
        }
        #expect(error.message == #""on_behalf_of" must be an integer from -2147483648 to 2147483647"#, "\(error)")
    }

    /// A valid request padded with whitespace to `size` bytes, newline included.
    static func paddedList(size: Int) -> [UInt8] {
        let core = Fixture.bytes(#"{"v":1,"op":"list"}"#)
        return core + [UInt8](repeating: UInt8(ascii: " "), count: size - core.count - 1) + [UInt8(ascii: "\n")]
    }

    @Test func acceptsALineOfExactlyTheLimit() throws {
        let line = Self.paddedList(size: WireProtocol.maximumRequestBytes)
        #expect(line.count == WireProtocol.maximumRequestBytes)
        #expect(try WireRequest.decode(line) == .list)
    }

    @Test(arguments: [WireProtocol.maximumRequestBytes + 1, WireProtocol.maximumRequestBytes * 4])
    func refusesOversizedLinesAsTooLarge(_ size: Int) throws {
        let error = try #require(throws: WireError.self) { try WireRequest.decode(Self.paddedList(size: size)) }
        #expect(error.code == .tooLarge)
    }

    @Test func oversizedGarbageIsTooLargeNotBadRequest() throws {
        let garbage = [UInt8](repeating: UInt8(ascii: "x"), count: WireProtocol.maximumRequestBytes + 1)
        let error = try #require(throws: WireError.self) { try WireRequest.decode(garbage) }
        #expect(error.code == .tooLarge)
    }

    @Test func errorDescriptionCarriesTheCode() {
        #expect(WireError(.portInUse, "port 80 is taken").description == "port 80 is taken [port_in_use]")
    }
}
