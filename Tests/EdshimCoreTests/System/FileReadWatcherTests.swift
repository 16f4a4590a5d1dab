@testable import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The watcher the xDS publisher waits on: it sees a file read after a mark, gives up
/// after its patience, and stops waiting for a reader that is not there until one
/// reads again.
@Suite("FileReadWatcher")
struct FileReadWatcherTests {
    /// A new directory holding `files`, each `{}`; the caller removes it.
    static func directory(with files: [String]) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edshim-reads-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for file in files { try Data("{}".utf8).write(to: URL(fileURLWithPath: directory + "/" + file)) }
        return directory
    }

    /// Marks `name` and replaces it, as the publisher does: a new version renamed into place.
    static func replace(_ name: String, in directory: String, watchedBy watcher: FileReadWatcher) async throws {
        await watcher.mark(name)
        try AtomicFile.write(Array("{\"v\":\(UUID().uuidString.count)}".utf8), to: directory + "/" + name)
    }

    @Test func seesAReadAfterTheMarkAndGivesUpWithoutOne() async throws {
        let directory = try Self.directory(with: ["cds.json", "lds.json"])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Patience well above the reads below, which a loaded machine may delay.
        let watcher = try #require(FileReadWatcher(directory: directory, patience: .seconds(1)))

        // Read before the mark: does not count.
        _ = FileManager.default.contents(atPath: directory + "/cds.json")
        try await Self.replace("cds.json", in: directory, watchedBy: watcher)
        let started = ContinuousClock.now
        #expect(await watcher.waitForRead(of: "cds.json") == false)
        #expect(ContinuousClock.now - started >= .seconds(1), "waited for its patience")

        // The reader seemed absent: the next wait returns at once.
        try await Self.replace("cds.json", in: directory, watchedBy: watcher)
        let again = ContinuousClock.now
        #expect(await watcher.waitForRead(of: "cds.json") == false)
        #expect(ContinuousClock.now - again < .milliseconds(500), "at once, not after its patience (1 s)")

        // A read between two marks shows the reader is back; a read of the file after
        // the mark ends the wait, a read of another file does not.
        _ = FileManager.default.contents(atPath: directory + "/lds.json")
        try await Self.replace("cds.json", in: directory, watchedBy: watcher)
        // On a thread of its own: a task could wait past the watcher's patience for a
        // thread of the pool, which the parallel tests keep busy.
        Thread.detachNewThread {
            usleep(50_000)
            _ = FileManager.default.contents(atPath: directory + "/lds.json")
            usleep(50_000)
            _ = FileManager.default.contents(atPath: directory + "/cds.json")
        }
        let waited = ContinuousClock.now
        #expect(await watcher.waitForRead(of: "cds.json"))
        #expect(ContinuousClock.now - waited >= .milliseconds(90), "not ended by the read of lds.json")
    }

    @Test("a read ends every wait for it, also one whose read another wait took in and was followed by another file's mark (concurrent commits)")
    func concurrentWaitsKeepTheirReads() async throws {
        let directory = try Self.directory(with: ["cds.json", "lds.json"])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Patience well above what a read takes on a loaded machine (once past 1 s).
        let watcher = try #require(FileReadWatcher(directory: directory, patience: .seconds(4)))
        for round in 0..<20 {
            try await Self.replace("lds.json", in: directory, watchedBy: watcher)
            // One commit waits for Envoy's read of lds.json ...
            let first = Task { await watcher.waitForRead(of: "lds.json") }
            try await Task.sleep(for: .milliseconds(5))
            _ = FileManager.default.contents(atPath: directory + "/lds.json")
            // ... another takes the same read in, and marks cds.json to replace it.
            #expect(await watcher.waitForRead(of: "lds.json"), "round \(round)")
            try await Self.replace("cds.json", in: directory, watchedBy: watcher)
            let started = ContinuousClock.now
            #expect(await first.value, "round \(round): the first wait missed the read")
            #expect(ContinuousClock.now - started < .seconds(2), "round \(round): ended by the read, not by its patience")
        }
        // A cancelled wait (the registration it served was withdrawn) ends at once,
        // and does not make the reader look absent: the next wait still has patience.
        let cancelled = Task { await watcher.waitForRead(of: "cds.json") }
        cancelled.cancel()
        let cancelledAt = ContinuousClock.now
        #expect(await cancelled.value == false)
        #expect(ContinuousClock.now - cancelledAt < .milliseconds(500), "a cancelled wait spun until its patience ran out")
        let waited = ContinuousClock.now
        #expect(await watcher.waitForRead(of: "cds.json") == false)
        #expect(ContinuousClock.now - waited >= .seconds(4), "waited its patience: the reader still counts as there")
    }

    @Test("a reader that opened the file before it was replaced and closes it after read the old version: no end to the wait; the server's own opens for writing are no reads")
    func readOfTheReplacedVersionDoesNotCount() async throws {
        let directory = try Self.directory(with: ["cds.json"])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/cds.json"
        let watcher = try #require(FileReadWatcher(directory: directory, patience: .milliseconds(300)))
        _ = FileManager.default.contents(atPath: path)
        #expect(await watcher.anyReadSeen)

        let reader = open(path, O_RDONLY | O_CLOEXEC)
        try #require(reader >= 0)
        await watcher.mark("cds.json")
        try AtomicFile.write(Array("{\"new\":1}".utf8), to: path)
        close(reader)
        // The server comparing the new file (opened for writing too): no read either.
        _ = SystemFile.read(path, access: O_RDWR)
        #expect(await watcher.waitForRead(of: "cds.json") == false, "the old version's reader ended the wait")

        _ = FileManager.default.contents(atPath: path)
        #expect(await watcher.waitForRead(of: "cds.json"), "a read of the new version ends it")
    }

    @Test("a read of the old version between the mark and the rename (a reader still taking in the last write) does not count")
    func readBeforeTheRenameDoesNotCount() async throws {
        let directory = try Self.directory(with: ["cds.json"])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/cds.json"
        let watcher = try #require(FileReadWatcher(directory: directory, patience: .milliseconds(300)))
        await watcher.mark("cds.json")
        _ = FileManager.default.contents(atPath: path)
        try AtomicFile.write(Array("{\"new\":1}".utf8), to: path)
        #expect(await watcher.waitForRead(of: "cds.json") == false, "the old version's read ended the wait")

        _ = FileManager.default.contents(atPath: path)
        #expect(await watcher.waitForRead(of: "cds.json"), "a read of the new version ends it")
    }

    @Test("a wait with its own bound (a replaced registration's answer) waits for the read even while the reader looks absent, and leaves that judgement alone")
    func boundedWaitIgnoresAbsence() async throws {
        let directory = try Self.directory(with: ["cds.json"])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/cds.json"
        let watcher = try #require(FileReadWatcher(directory: directory, patience: .milliseconds(100)))
        try await Self.replace("cds.json", in: directory, watchedBy: watcher)
        #expect(await watcher.waitForRead(of: "cds.json") == false, "no reader: the reader now looks absent")
        Task {
            try await Task.sleep(for: .milliseconds(200))
            _ = FileManager.default.contents(atPath: path)
        }
        #expect(await watcher.waitForRead(of: "cds.json", atMost: .seconds(5)), "waited for the late read")

        try await Self.replace("cds.json", in: directory, watchedBy: watcher)
        let started = ContinuousClock.now
        #expect(await watcher.waitForRead(of: "cds.json", atMost: .milliseconds(150)) == false)
        #expect(ContinuousClock.now - started >= .milliseconds(150))
        let next = ContinuousClock.now
        #expect(await watcher.waitForRead(of: "cds.json") == false)
        #expect(ContinuousClock.now - next >= .milliseconds(100), "the bounded wait's timeout did not make the reader look absent: the next wait had its patience")
    }

    @Test("unreadFor counts from the earliest write the reader has not read anything since, ends with a read, and asking loses no read")
    func unreadTime() async throws {
        let directory = try Self.directory(with: ["cds.json"])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let watcher = try #require(FileReadWatcher(directory: directory, patience: .milliseconds(100)))
        #expect(await watcher.unreadFor == nil, "nothing written yet")

        try await Self.replace("cds.json", in: directory, watchedBy: watcher)
        try await Task.sleep(for: .milliseconds(150))
        try await Self.replace("cds.json", in: directory, watchedBy: watcher)
        let unread = try #require(await watcher.unreadFor)
        #expect(unread >= .milliseconds(150), "from the first of the two writes: \(unread)")

        _ = FileManager.default.contents(atPath: directory + "/cds.json")
        try await Task.sleep(for: .milliseconds(20))
        #expect(await watcher.unreadFor == nil, "a read shows the reader is there")
        #expect(await watcher.waitForRead(of: "cds.json"), "the read taken in by asking still ends the wait")
        try await Self.replace("cds.json", in: directory, watchedBy: watcher)
        #expect(try #require(await watcher.unreadFor) < .milliseconds(100), "a new write starts a new count")
    }
}
