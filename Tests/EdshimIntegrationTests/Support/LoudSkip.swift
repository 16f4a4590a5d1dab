import Foundation
import Testing

/// Reports a skip loudly (stderr, the word SKIPPED) and cancels the current test, so
/// that a test the machine cannot run is listed as cancelled, never as passed. (A
/// cancelled case of a parameterized test is listed as passed, though: such tests
/// check what they need up front, with a condition trait that announces the skip.)
func skipLoudly(_ reason: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Never {
    announceSkip(reason)
    try Test.cancel(Comment(rawValue: "SKIPPED: \(reason)"), sourceLocation: sourceLocation)
}

/// Writes `SKIPPED: reason` to stderr, set apart so that it cannot be missed.
func announceSkip(_ reason: String) {
    FileHandle.standardError.write(Data("\n*** SKIPPED: \(reason) ***\n\n".utf8))
}
