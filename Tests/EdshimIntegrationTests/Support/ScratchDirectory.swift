import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A new private directory for one fixture: `mkdtemp` of `prefix` + six random
/// characters, mode 0700. The fixture removes it.
enum ScratchDirectory {
    static func make(_ prefix: String) throws -> String {
        var template = Array((prefix + "XXXXXX").utf8CString)
        guard mkdtemp(&template) != nil else { throw TestFailure("mkdtemp \(prefix)XXXXXX: \(String(cString: strerror(errno)))") }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
