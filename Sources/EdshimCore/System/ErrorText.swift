#if canImport(Glibc)
import Glibc
#endif

/// How a failed system call reads in a message: the C library's words for its
/// `errno` (`strerror`), as docker-proxy's and the shell's messages say them.
public enum ErrorText {
    /// The words for error number `code` ("No such file or directory").
    public static func describe(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// Text from outside (a label value, a peer's request) as it may appear in one
    /// log line or message: quoted, cut at 80 characters, and every control character
    /// escaped (C0, DEL, C1, the line and paragraph separators): it can neither end
    /// the line, nor pose as a syslog priority, nor send a terminal escape sequence.
    public static func quoted(_ text: String) -> String {
        let escaped = text.unicodeScalars.prefix(80).map { scalar -> String in
            switch scalar.value {
            case 0x22: "\\\""
            case 0x5C: "\\\\"
            case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029: "\\u{\(String(scalar.value, radix: 16))}"
            default: String(scalar)
            }
        }.joined()
        return "\"\(escaped)\(text.unicodeScalars.count > 80 ? "…" : "")\""
    }
}
