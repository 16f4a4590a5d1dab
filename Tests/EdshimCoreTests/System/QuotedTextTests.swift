@testable import EdshimCore
import Testing

/// Text from outside in a log line or message (`ErrorText.quoted`): one line, no
/// syslog priority of its own, no terminal escape sequence.
@Suite("Quoted outside text")
struct QuotedTextTests {
    @Test("every control character is escaped: C0, DEL, C1 (CSI), the line and paragraph separators; quotes and backslashes too", arguments: [
        ("a\nb", #""a\u{a}b""#),
        ("\u{1B}[2J", #""\u{1b}[2J""#),
        ("\u{9B}31m", #""\u{9b}31m""#),
        ("x\u{2028}y\u{2029}", #""x\u{2028}y\u{2029}""#),
        ("say \"hi\" \\", #""say \"hi\" \\""#),
        ("Café", #""Café""#),
    ])
    func escapes(_ text: String, _ expected: String) {
        #expect(ErrorText.quoted(text) == expected)
    }

    @Test("an operation the server does not know is named quoted in its refusal")
    func unknownOperation() throws {
        do {
            _ = try WireRequest.decode(Array(#"{"v":1,"op":"x\n<0>emerg fake"}"#.utf8))
            Issue.record("decoded an unknown operation")
        } catch {
            #expect(error.code == .unknownOperation)
            #expect(!error.message.contains("\n") && error.message.contains(#""x\u{a}<0>emerg fake""#), "\(error.message)")
        }
    }
}
