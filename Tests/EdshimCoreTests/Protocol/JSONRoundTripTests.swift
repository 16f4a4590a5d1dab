@testable import EdshimCore
import Testing

/// `JSONValue.serialized` and `JSONParser.parse` agree, on every kind of value.
@Suite("JSON codec round trips")
struct JSONRoundTripTests {
    static let strings: [String] = [
        "",
        "plain",
        "quote \" backslash \\ slash /",
        "newline \n return \r tab \t",
        "backspace \u{08} formfeed \u{0C}",
        "nul \u{00} unit separator \u{1F} delete \u{7F}",
        "héllo wörld",
        "日本語のテキスト",
        "emoji 😀🚀 and flags 🇫🇷",
        "combining e\u{301} and zero width \u{200B}",
        "line separator \u{2028} paragraph \u{2029}",
        String(repeating: "long ", count: 2_000),
    ]

    @Test(arguments: strings)
    func stringsRoundTrip(_ text: String) throws {
        let bytes = JSONValue.string(text).serialized
        #expect(!bytes.contains(UInt8(ascii: "\n")) && !bytes.contains(UInt8(ascii: "\r")))
        #expect(bytes.allSatisfy { $0 >= 0x20 }, "no raw control characters in output")
        #expect(try JSONParser.parse(bytes) == .string(text))
    }

    @Test func nestedDocumentRoundTrips() throws {
        let value = JSONValue.object([
            "null": .null,
            "yes": .bool(true),
            "no": .bool(false),
            "numbers": .array([.number("0"), .number("-0"), .number("42"), .number("-1.5e+10"), .number("3.14159"), .integer(UInt64.max), .integer(Int64.min)]),
            "nested": .object(["deeper": .array([.object([:]), .array([]), .string("x")])]),
            "unicode ✓": .string("ünïcödé"),
        ])
        #expect(try JSONParser.parse(value.serialized) == value)
    }

    @Test func writesCompactKnownBytes() {
        let value = JSONValue.object(["a": .string("x\"y\\z\n\u{01}"), "b": .array([.integer(1), .bool(true), .null])])
        #expect(Fixture.text(value.serialized) == #"{"a":"x\"y\\z\n\u0001","b":[1,true,null]}"#)
    }

    /// Escapes the writer never produces but other clients may send.
    @Test(arguments: [
        (#""\"\\\/\b\f\n\r\t""#, "\"\\/\u{08}\u{0C}\n\r\t"),
        (#""\u0041\u00e9\u00E9""#, "Aéé"),
        (#""\u65e5\u672c""#, "日本"),
        (#""\ud83d\ude00""#, "😀"),
        (#""\uD83D\uDE80 go""#, "🚀 go"),
        (#""\u0000""#, "\u{00}"),
        (#""a\u000ab""#, "a\nb"),
    ])
    func parsesEscapes(_ json: String, _ expected: String) throws {
        #expect(try JSONParser.parse(Fixture.bytes(json)) == .string(expected))
    }

    @Test(arguments: ["0", "-0", "7", "-12", "1.5", "0.25", "1e10", "1E-5", "-12.5e+3", "123456789012345678901234567890"])
    func keepsNumbersAsWritten(_ text: String) throws {
        #expect(try JSONParser.parse(Fixture.bytes(text)) == .number(text))
    }

    @Test func toleratesSurroundingWhitespace() throws {
        #expect(try JSONParser.parse(Fixture.bytes(" \t\r\n{ \"a\" : [ 1 , 2 ] }\n ")) == .object(["a": .array([.number("1"), .number("2")])]))
    }

    @Test func lastDuplicateMemberWins() throws {
        let object = try #require(try JSONParser.parse(Fixture.bytes(#"{"a":1,"a":2}"#)).objectValue)
        #expect(object["a"] == .number("2"))
        #expect(object.members.count == 2)
    }

    @Test func accessorsMatchTheirCase() {
        #expect(JSONValue.integer(80).integerValue(UInt16.self) == 80)
        #expect(JSONValue.number("65536").integerValue(UInt16.self) == nil)
        #expect(JSONValue.number("1.0").integerValue(Int.self) == nil)
        #expect(JSONValue.number("-1").integerValue(UInt64.self) == nil)
        #expect(JSONValue.string("80").integerValue(Int.self) == nil)
        #expect(JSONValue.bool(true).boolValue == true)
        #expect(JSONValue.string("x").stringValue == "x")
        #expect(JSONValue.null.stringValue == nil)
        #expect(JSONValue.array([]).arrayValue == [])
        #expect(JSONValue.object([:]).objectValue == JSONObject())
    }

    @Test func objectAppendSkipsNil() {
        var object = JSONObject()
        object.append("kept", .integer(1))
        object.append("dropped", nil)
        #expect(object.members.map(\.name) == ["kept"])
    }

    @Test func nestingUpToTheLimitParses() throws {
        let depth = JSONParser.maximumDepth
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(throws: Never.self) { try JSONParser.parse(Fixture.bytes(text)) }
    }
}
