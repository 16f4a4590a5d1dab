@testable import EdshimCore
import Foundation
import Testing

/// Two spellings of one path compare equal once resolved, whether the path exists yet
/// or not (the server compares its two socket paths before it makes their directory).
@Suite("ResolvedPath")
struct ResolvedPathTests {
    @Test("the existing part is resolved through symlinks, `.` and `..`; the missing rest as written, `.` and `..` taken out")
    func spellingsOfOnePath() throws {
        let directory = try FileAndClockTests.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let real = directory + "/real"
        try FileManager.default.createDirectory(atPath: real, withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: directory + "/link", withDestinationPath: real)
        let canonical = ResolvedPath.of(real + "/edshim.sock")
        for spelling in [
            real + "/./edshim.sock",
            directory + "/link/edshim.sock",
            directory + "//link/../real/edshim.sock",
        ] {
            #expect(ResolvedPath.of(spelling) == canonical, "\(spelling)")
        }
        // A directory the server has not made yet (/run/edshim after a reboot), under a symlink.
        let missing = ResolvedPath.of(real + "/run/edshim/admin.sock")
        #expect(ResolvedPath.of(directory + "/link/run/./edshim/../edshim/admin.sock") == missing)
        #expect(missing.hasSuffix("/real/run/edshim/admin.sock"))
        #expect(ResolvedPath.of(real + "/other.sock") != canonical)
        #expect(ResolvedPath.of("/") == "/")
    }
}
