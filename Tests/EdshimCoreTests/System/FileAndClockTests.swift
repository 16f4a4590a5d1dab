#if canImport(Glibc)
import Glibc
#endif
@testable import EdshimCore
import Foundation
import Testing

/// AtomicFile, SystemFile and Deadline: the small system helpers.
@Suite("System helpers")
struct FileAndClockTests {
    static func temporaryDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edshim-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test func atomicWriteReplacesAndLeavesNoTemporaryFile() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("lds.json").path
        try AtomicFile.write(Fixture.bytes("first"), to: path)
        try AtomicFile.write(Fixture.bytes("second, longer"), to: path, mode: 0o600, durable: true)
        #expect(SystemFile.read(path) == Fixture.bytes("second, longer"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["lds.json"])
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }

    @Test("a symlink planted at the temporary file's name is not followed: its target stays untouched")
    func atomicWriteIgnoresAPlantedSymlink() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let victim = directory.appendingPathComponent("victim").path
        try AtomicFile.write(Fixture.bytes("precious"), to: victim)
        try FileManager.default.createSymbolicLink(atPath: directory.path + "/.state.json.tmp-\(getpid())", withDestinationPath: victim)
        try AtomicFile.write(Fixture.bytes("state"), to: directory.path + "/state.json")
        #expect(SystemFile.read(victim) == Fixture.bytes("precious"))
        #expect(SystemFile.read(directory.path + "/state.json") == Fixture.bytes("state"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["state.json", "victim"])
    }

    @Test("an access log path Envoy could open passes; a directory or a missing directory is named")
    func appendableFile() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("access.log").path
        #expect(AppendableFile.problem(at: file) == nil, "a new file in an existing directory")
        try AtomicFile.write(Fixture.bytes("line\n"), to: file)
        #expect(AppendableFile.problem(at: file) == nil, "an existing file")
        #expect(AppendableFile.problem(at: directory.path) == "it is a directory")
        #expect(AppendableFile.problem(at: directory.path + "/missing/access.log") == "the directory \(directory.path)/missing does not exist")
        #expect(AppendableFile.problem(at: file + "/x") == "the directory \(file) does not exist", "a file is no directory")
        #expect(FileManager.default.fileExists(atPath: directory.path + "/missing") == false, "checking creates nothing")
    }

    @Test func atomicWriteIntoAMissingDirectoryFails() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let error = try #require(throws: AtomicFile.Failure.self) {
            try AtomicFile.write([1], to: directory.appendingPathComponent("absent/file").path)
        }
        #expect(error.description.contains("absent"))
    }

    @Test func makeDirectoriesIsMkdirP() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let nested = directory.appendingPathComponent("a/b/c").path
        try AtomicFile.makeDirectories(nested)
        try AtomicFile.makeDirectories(nested)
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: nested, isDirectory: &isDirectory) && isDirectory.boolValue)
    }

    @Test func systemFileReadsProcAndLargeFiles() throws {
        let stat = try #require(SystemFile.read("/proc/self/stat"))
        #expect(!stat.isEmpty, "/proc files report size 0 yet have content")
        #expect(SystemFile.read("/nonexistent/edshim") == nil)

        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let big = [UInt8]((0..<300_000).map { UInt8(truncatingIfNeeded: $0) })
        let path = directory.appendingPathComponent("big").path
        try AtomicFile.write(big, to: path)
        #expect(SystemFile.read(path) == big)
    }

    @Test func deadlines() {
        let past = Deadline.after(milliseconds: -1_000)
        #expect(past.hasPassed && past.remaining == 0)
        let future = Deadline.after(milliseconds: 3_600_000)
        #expect(!future.hasPassed && future.remaining > 0)
    }
}
