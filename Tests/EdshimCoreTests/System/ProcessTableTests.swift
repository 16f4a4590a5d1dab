#if canImport(Glibc)
import Glibc
#endif
@testable import EdshimCore
import Foundation
import Testing

@Suite("ProcessTable")
struct ProcessTableTests {
    /// `/proc/PID/stat` with field 22 (start time) = `starttime`.
    static func stat(comm: String, startTime: UInt64) -> [UInt8] {
        let afterComm = "S 1 4242 4242 0 -1 4194560 1234 0 0 0 12 34 0 0 20 0 1 0 \(startTime) 12345678 456 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        return Array("4242 (\(comm)) \(afterComm)".utf8)
    }

    @Test(arguments: [
        "docker-proxy",
        "edshim",
        "my proc",
        "a (b) c",
        ") S 1 2 3 4 5",
        "((",
        "x) 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 (y",
    ])
    func parsesStartTimeAfterTheCommandName(_ comm: String) {
        #expect(ProcessTable.parseStartTime(Self.stat(comm: comm, startTime: 987_654_321)) == 987_654_321)
    }

    @Test func refusesTruncatedOrGarbledStat() {
        #expect(ProcessTable.parseStartTime([]) == nil)
        #expect(ProcessTable.parseStartTime(Fixture.bytes("4242 (edshim S 1 2 3")) == nil)
        #expect(ProcessTable.parseStartTime(Fixture.bytes("4242 (edshim) S 1 4242 4242 0 -1")) == nil)
        #expect(ProcessTable.parseStartTime(Fixture.bytes("4242 (edshim) S 1 4242 4242 0 -1 4194560 1234 0 0 0 12 34 0 0 20 0 1 0 soon 1")) == nil)
    }

    @Test func readsThisProcess() throws {
        let startTime = try #require(ProcessTable.startTime(of: getpid()))
        #expect(startTime > 0)
        #expect(ProcessTable.owner(of: getpid()) == Owner(pid: getpid(), startTime: startTime))
        let commandLine = try #require(ProcessTable.commandLine(of: getpid()))
        #expect(!commandLine.isEmpty)
    }

    @Test("a process name with control characters (any program may name itself so) reads with each one as ?, as ps shows it")
    func nameShowsControlCharactersAsQuestionMarks() throws {
        let root = try FileAndClockTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("4242"), withIntermediateDirectories: true)
        try Data("ng\r\n0\u{1B}[31mX\u{2028}\u{85}\n".utf8).write(to: root.appendingPathComponent("4242/comm"))
        #expect(ProcessTable.name(of: 4242, root: root.path) == "ng??0?[31mX??")
        try Data("nginx: worker\n".utf8).write(to: root.appendingPathComponent("4242/comm"))
        #expect(ProcessTable.name(of: 4242, root: root.path) == "nginx: worker")
    }

    @Test func absentProcessesAreNil() {
        // Above any pid_max Linux allows (2^22).
        #expect(ProcessTable.startTime(of: Int32.max) == nil)
        #expect(ProcessTable.owner(of: Int32.max) == nil)
        #expect(ProcessTable.commandLine(of: Int32.max) == nil)
    }

    @Test func readsAFakeProcRoot() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("edshim-proc-\(UUID().uuidString)")
        let process = root.appendingPathComponent("77")
        try FileManager.default.createDirectory(at: process, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try Data(Self.stat(comm: "docker-proxy", startTime: 555)).write(to: process.appendingPathComponent("stat"))
        try Data("/usr/local/bin/edshim\u{0}-proto\u{0}tcp\u{0}\u{0}-host-ip\u{0}".utf8).write(to: process.appendingPathComponent("cmdline"))
        #expect(ProcessTable.owner(of: 77, root: root.path) == Owner(pid: 77, startTime: 555))
        #expect(ProcessTable.commandLine(of: 77, root: root.path) == ["/usr/local/bin/edshim", "-proto", "tcp", "", "-host-ip"])

        // A kernel thread or a zombie has an empty cmdline.
        try Data().write(to: process.appendingPathComponent("cmdline"))
        #expect(ProcessTable.commandLine(of: 77, root: root.path) == nil)
    }

    @Test("a process runs while its PID names the same start time and it is no zombie")
    func running() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("edshim-proc-\(UUID().uuidString)")
        let process = root.appendingPathComponent("79")
        try FileManager.default.createDirectory(at: process, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let stat = process.appendingPathComponent("stat")
        try Data(Self.stat(comm: "edshim (x) Z", startTime: 555)).write(to: stat)
        #expect(ProcessTable.liveness(of: Owner(pid: 79, startTime: 555), root: root.path) == .running)
        #expect(ProcessTable.liveness(of: Owner(pid: 79, startTime: 556), root: root.path) == .exited, "the PID was taken by another process")
        #expect(ProcessTable.liveness(of: Owner(pid: 80, startTime: 555), root: root.path) == .exited, "no such process")
        for state in ["Z", "X"] {
            let zombie = String(decoding: Self.stat(comm: "edshim", startTime: 555), as: UTF8.self).replacingOccurrences(of: ") S ", with: ") \(state) ")
            try Data(zombie.utf8).write(to: stat)
            #expect(ProcessTable.liveness(of: Owner(pid: 79, startTime: 555), root: root.path) == .exited, "state \(state): exited, not reaped yet")
        }
        // A stat file that cannot be read (here: a directory in its place) tells nothing.
        let unreadable = root.appendingPathComponent("81")
        try FileManager.default.createDirectory(at: unreadable.appendingPathComponent("stat"), withIntermediateDirectories: true)
        #expect(ProcessTable.liveness(of: Owner(pid: 81, startTime: 555), root: root.path) == .unknown)
        #expect(ProcessTable.liveness(of: try #require(ProcessTable.owner(of: getpid()))) == .running)
    }

    @Test func readsUserAndGroupsFromStatus() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("edshim-proc-\(UUID().uuidString)")
        let process = root.appendingPathComponent("78")
        try FileManager.default.createDirectory(at: process, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let status = "Name:\tedshim\nUmask:\t0022\nUid:\t1000\t1001\t1002\t1003\nGid:\t50\t50\t50\t50\nGroups:\t4 24 998 \n"
        try Data(status.utf8).write(to: process.appendingPathComponent("status"))
        #expect(ProcessTable.userID(of: 78, root: root.path) == 1000)
        #expect(ProcessTable.supplementaryGroups(of: 78, root: root.path) == [4, 24, 998])

        try Data("Name:\tedshim\nGroups:\t\n".utf8).write(to: process.appendingPathComponent("status"))
        #expect(ProcessTable.userID(of: 78, root: root.path) == nil)
        #expect(ProcessTable.supplementaryGroups(of: 78, root: root.path).isEmpty)

        #expect(ProcessTable.userID(of: getpid()) == getuid())
        #expect(ProcessTable.supplementaryGroups(of: Int32.max).isEmpty)
    }
}
