import Foundation
import Testing

/// Golden files: expected encoder output, compared byte for byte.
///
/// They live in `Tests/EdshimCoreTests/Golden/`, found from this source file's path
/// (`#filePath`) rather than the test bundle, so that updating them rewrites the files
/// in the source tree. To (re)generate them after an intended change of output, run
///
///     EDSHIM_UPDATE_GOLDEN=1 swift test --filter EdshimCoreTests
///
/// which writes the files instead of comparing; review the diff before committing.
enum GoldenFile {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // Support/
        .deletingLastPathComponent()  // EdshimCoreTests/
        .appendingPathComponent("Golden", isDirectory: true)

    static var isUpdating: Bool {
        ProcessInfo.processInfo.environment["EDSHIM_UPDATE_GOLDEN"] == "1"
    }

    /// Compares `actual` with the golden file `name`, or writes it when updating.
    static func verify(_ actual: [UInt8], named name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let url = directory.appendingPathComponent(name)
        if isUpdating {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data(actual).write(to: url, options: .atomic)
            return
        }
        let expectedData = try #require(
            FileManager.default.contents(atPath: url.path),
            "golden file \(name) is missing: run with EDSHIM_UPDATE_GOLDEN=1 to create it",
            sourceLocation: sourceLocation
        )
        let expected = [UInt8](expectedData)
        guard actual != expected else { return }
        Issue.record(
            "output differs from golden file \(name) (\(firstDifference(actual, expected))); if the change is intended, rerun with EDSHIM_UPDATE_GOLDEN=1",
            sourceLocation: sourceLocation
        )
    }

    private static func firstDifference(_ actual: [UInt8], _ expected: [UInt8]) -> String {
        let actualLines = String(decoding: actual, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let expectedLines = String(decoding: expected, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        for (index, (got, want)) in zip(actualLines, expectedLines).enumerated() where got != want {
            return "line \(index + 1): got `\(got)`, expected `\(want)`"
        }
        return "got \(actualLines.count) lines, expected \(expectedLines.count)"
    }
}
