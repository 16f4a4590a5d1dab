@testable import EdshimCore
import Testing

/// Everything RFC 8259 forbids is refused, with the byte where parsing stopped.
@Suite("JSONParser refuses malformed input")
struct JSONMalformedInputTests {
    static let malformedText: [String] = [
        // Empty and truncated.
        "", " ", "{", "[", "\"", "\"abc", "{\"a\"", "{\"a\":", "{\"a\":1", "[1,", "[1,2", "tru", "nul", "fals",
        // Trailing garbage and structure errors.
        "{}x", "1 2", "[] []", "{\"a\":1}}", "[1,]", "[,1]", "{\"a\":1,}", "{,}", "{\"a\" 1}", "{a:1}", "{'a':1}", "{1:2}",
        "[1 2]", "True", "NULL", "undefined",
        // Bad escapes and lone surrogates.
        #""\x""#, #""\u12""#, #""\u12G4""#, #""\U0041""#, #""\'""#, #""\""#, #""\u""#,
        #""\ud800""#, #""\udc00""#, #""\udfff""#, #""\ud800x""#, #""\ud800\n""#, #""\ud800\u0041""#, #""\ud800\ud800""#,
        // Numbers outside the grammar.
        "01", "-01", "00", "1.", "-", "+1", ".5", "1e", "1e+", "1E-", "1.e5", "0x10", "NaN", "Infinity", "-Infinity", "1_000", "--1",
    ]

    @Test(arguments: malformedText)
    func refusesText(_ text: String) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Fixture.bytes(text)) }
    }

    static let malformedBytes: [[UInt8]] = [
        // Raw control characters inside strings.
        [0x22, 0x61, 0x0A, 0x62, 0x22],
        [0x22, 0x00, 0x22],
        [0x22, 0x09, 0x22],
        [0x22, 0x1F, 0x22],
        // Invalid UTF-8: stray continuation, overlong, encoded surrogate, truncated sequence, 0xFF.
        [0x22, 0x80, 0x22],
        [0x22, 0xC0, 0xAF, 0x22],
        [0x22, 0xED, 0xA0, 0x80, 0x22],
        [0x22, 0xE6, 0x97, 0x22],
        [0x22, 0xFF, 0x22],
        // Non-JSON whitespace and a byte order mark.
        [0x0C, 0x31],
        [0xEF, 0xBB, 0xBF, 0x31],
    ]

    @Test(arguments: malformedBytes)
    func refusesBytes(_ bytes: [UInt8]) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(bytes) }
    }

    @Test(arguments: [JSONParser.maximumDepth + 1, 1_000, 100_000])
    func refusesNestingDeeperThanTheLimit(_ depth: Int) {
        let arrays = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Fixture.bytes(arrays)) }
        let objects = String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth)
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Fixture.bytes(objects)) }
    }

    @Test("a limit given raises the default: 40 levels parse under 64, and are refused under the default 16; 65 are refused under 64")
    func depthLimitGiven() throws {
        func nested(_ depth: Int) -> [UInt8] { Fixture.bytes(String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth)) }
        #expect(try JSONParser.parse(nested(40), maximumDepth: 64).objectValue?["a"] != nil)
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(nested(40)) }
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(nested(64), maximumDepth: 64) }
    }

    @Test func failureNamesTheOffendingByte() throws {
        let failure = try #require(throws: JSONParser.Failure.self) {
            try JSONParser.parse(Fixture.bytes(#"{"a":1} x"#))
        }
        #expect(failure.offset == 8)
        #expect(failure.description.contains("at byte 8"))
    }
}
