@testable import EdshimCore
import EdshimTestSupport
import Testing

@Suite("LabelSanitizer.sanitize")
struct LabelSanitizerTests {
    @Test(arguments: [
        ("nginx", "nginx"),
        ("Web-API_v2", "Web-API_v2"),
        ("\"quoted\"", "quoted"),
        ("it's", "it_s"),
        ("a/b/c", "a_b_c"),
        ("/leading/slash/", "leading_slash"),
        ("my service", "my_service"),
        ("line\nbreak\r\nagain", "line_break_again"),
        ("tab\there", "tab_here"),
        ("a.b.c", "a_b_c"),
        ("host:8080", "host_8080"),
        ("a  ..  b", "a_b"),
        ("--web--", "web"),
        ("__web__", "web"),
        ("-_x_-", "x"),
        ("café", "caf"),
        ("naïve", "na_ve"),
        ("日本語web", "web"),
        ("🚀rocket", "rocket"),
        ("rocket🚀launch", "rocket_launch"),
        ("a{b}[c]<d>|e", "a_b_c_d_e"),
        ("x\u{00}y", "x_y"),
    ])
    func sanitizes(_ value: String, _ expected: String) {
        #expect(LabelSanitizer.sanitize(value) == expected)
    }

    @Test(arguments: ["", " ", "...", "///", "\"\"", "\n", "-", "_-_", "日本語", "🚀🚀", "é"])
    func nothingUsableIsNil(_ value: String) {
        #expect(LabelSanitizer.sanitize(value) == nil)
    }

    @Test func longValuesAreCutWithAHashSuffix() throws {
        let sanitized = try #require(LabelSanitizer.sanitize(String(repeating: "a", count: 1_000)))
        #expect(sanitized.utf8.count <= LabelSanitizer.maximumLength)
        // FNV-1a 32 of the original value: pinned, because the name ends up in Envoy stats.
        #expect(sanitized == String(repeating: "a", count: 55) + "_1dd9658d")
    }

    @Test func longValuesSharingAPrefixStayApart() throws {
        let prefix = String(repeating: "service", count: 50)
        let first = try #require(LabelSanitizer.sanitize(prefix + "-one"))
        let second = try #require(LabelSanitizer.sanitize(prefix + "-two"))
        #expect(first != second)
        #expect(first.utf8.count <= LabelSanitizer.maximumLength && second.utf8.count <= LabelSanitizer.maximumLength)
        // Values that sanitize alike before the cut but differ in the original stay apart too.
        let dotted = try #require(LabelSanitizer.sanitize(prefix + ".x"))
        let slashed = try #require(LabelSanitizer.sanitize(prefix + "/x"))
        #expect(dotted != slashed)
    }

    @Test func maximumLengthIsKeptAsIs() {
        let exact = String(repeating: "b", count: LabelSanitizer.maximumLength)
        #expect(LabelSanitizer.sanitize(exact) == exact)
        let oneMore = String(repeating: "b", count: LabelSanitizer.maximumLength + 1)
        #expect(LabelSanitizer.sanitize(oneMore) != oneMore)
        #expect((LabelSanitizer.sanitize(oneMore)?.utf8.count ?? 0) <= LabelSanitizer.maximumLength)
    }

    @Test func isDeterministic() {
        let value = String(repeating: "x.y/z ", count: 300) + "😀"
        #expect(LabelSanitizer.sanitize(value) == LabelSanitizer.sanitize(value))
        #expect(LabelSanitizer.sanitize("web.prod") == LabelSanitizer.sanitize("web.prod"))
    }

    /// Whatever the label, the result is a name part Envoy accepts.
    @Test func anyValueYieldsAnAcceptableNamePart() {
        var generator = SeededGenerator(seed: 0xED5_41)
        let alphabet: [Character] = Array("aZ09-_ ./:\"'\\\n\t@#%é日😀{}[]()=,;")
        for _ in 0..<2_000 {
            let length = Int.random(in: 0...200, using: &generator)
            let value = String((0..<length).map { _ in alphabet.randomElement(using: &generator) ?? "a" })
            guard let sanitized = LabelSanitizer.sanitize(value) else { continue }
            #expect(!sanitized.isEmpty && sanitized.utf8.count <= LabelSanitizer.maximumLength, "\(value.debugDescription)")
            #expect(sanitized.utf8.allSatisfy { $0.isNamePartByte }, "\(sanitized)")
            #expect(sanitized.first?.isLetterOrNumberASCII == true && sanitized.last?.isLetterOrNumberASCII == true, "\(sanitized)")
        }
    }
}

extension UInt8 {
    fileprivate var isNamePartByte: Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || self == UInt8(ascii: "-") || self == UInt8(ascii: "_")
    }
}

extension Character {
    fileprivate var isLetterOrNumberASCII: Bool { isASCII && (isLetter || isNumber) }
}
