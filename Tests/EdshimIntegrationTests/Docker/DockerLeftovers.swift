import EdshimCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The forceful half of a fixture's teardown, which needs no daemon to cooperate: run
/// after dockerd and containerd were asked to stop, and at start for the directories
/// of fixtures whose test process died before tearing down. It touches only what a
/// fixture made: processes in its cgroup or naming its private directory, mounts
/// under that directory, its bridge, its cgroup, the directory itself.
enum DockerLeftovers {
    /// Where every fixture's directory lives: `/tmp/edshim-docker-XXXXXX`, short enough
    /// for the daemons' Unix sockets (107 bytes).
    static let directoryPrefix = "/tmp/edshim-docker-"

    /// Removes everything the fixture in `directory` left behind. Returns what could
    /// not be removed (empty when clean).
    static func sweep(directory: String, bridge: String?, ip: String) async -> [String] {
        var problems: [String] = []
        var victims = bridge.map(processesInCgroup) ?? []
        victims.formUnion(processesNaming(directory + "/"))
        for pid in victims { kill(pid, SIGKILL) }
        if await !waitGone(victims, timeout: .seconds(5)) { problems.append("processes \(victims.sorted()) outlived SIGKILL") }

        let mounted = unmountAll(under: directory)
        if !mounted.isEmpty { problems.append("still mounted: \(mounted)") }
        if let bridge {
            let scratch = FileManager.default.fileExists(atPath: directory) ? directory : "/tmp"
            await PrivateBridge.delete(named: bridge, ip: ip, in: scratch)
            if FileManager.default.fileExists(atPath: "/sys/class/net/\(bridge)") { problems.append("bridge \(bridge) still exists") }
            problems += await removeCgroup(named: bridge)
        }
        // Never recurse into a directory that still has something mounted in it.
        if mounted.isEmpty, FileManager.default.fileExists(atPath: directory) {
            do { try FileManager.default.removeItem(atPath: directory) } catch { problems.append("removing \(directory): \(error)") }
        }
        return problems
    }

    /// Writes `<directory>/owner`: this test process (pid and start time, so that a
    /// reused pid is not mistaken for it) and the fixture's bridge, for `reapStale`.
    static func recordOwner(of directory: String, bridge: String?) throws {
        let me = getpid()
        let record = "pid=\(me)\nstart=\(ProcessTable.startTime(of: me) ?? 0)\n" + (bridge.map { "bridge=\($0)\n" } ?? "")
        try record.write(toFile: directory + "/owner", atomically: true, encoding: .utf8)
    }

    /// Sweeps the directories of fixtures whose owning test process is gone.
    static func reapStale(ip: String) async {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        for entry in entries where ("/tmp/" + entry).hasPrefix(directoryPrefix) {
            let directory = "/tmp/" + entry
            guard let record = try? String(contentsOfFile: directory + "/owner", encoding: .utf8) else { continue }
            let fields = Dictionary(record.split(separator: "\n").compactMap { line -> (String, String)? in
                let parts = line.split(separator: "=", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            }, uniquingKeysWith: { $1 })
            guard let owner = fields["pid"].flatMap({ pid_t($0) }), let started = fields["start"].flatMap({ UInt64($0) }),
                  ProcessTable.startTime(of: owner) != started else { continue }
            let problems = await sweep(directory: directory, bridge: fields["bridge"], ip: ip)
            let outcome = problems.isEmpty ? "removed" : "partly removed: \(problems.joined(separator: "; "))"
            FileHandle.standardError.write(Data("docker fixture: leftovers of dead test process \(owner) in \(directory) \(outcome)\n".utf8))
        }
    }

    // MARK: Processes

    /// Every process whose command line contains `text` (the fixture's unique
    /// directory: its daemons and containerd's shims), this process excepted.
    static func processesNaming(_ text: String) -> Set<pid_t> {
        var found: Set<pid_t> = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), pid != getpid(), let argv = ProcessTable.commandLine(of: pid) else { continue }
            if argv.contains(where: { $0.contains(text) }) { found.insert(pid) }
        }
        return found
    }

    /// The processes whose parent is `parent`, with their command lines.
    static func children(of parent: pid_t) -> [(pid: pid_t, argv: [String])] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry in
            guard let pid = pid_t(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let afterName = stat.range(of: ") ", options: .backwards) else { return nil }
            // After "pid (comm) ": the state, then the parent's pid.
            let fields = stat[afterName.upperBound...].split(separator: " ")
            guard fields.count > 1, pid_t(fields[1]) == parent, let argv = ProcessTable.commandLine(of: pid) else { return nil }
            return (pid, argv)
        }.sorted { $0.pid < $1.pid }
    }

    /// The process ids in the fixture's cgroup (dockerd's `--cgroup-parent`), in
    /// every hierarchy: the containers' processes.
    static func processesInCgroup(_ name: String) -> Set<pid_t> {
        var found: Set<pid_t> = []
        for directory in cgroupDirectories(named: name) {
            let procs = (try? String(contentsOfFile: directory + "/cgroup.procs", encoding: .utf8)) ?? ""
            found.formUnion(procs.split(separator: "\n").compactMap { pid_t($0) })
        }
        return found
    }

    private static func waitGone(_ pids: Set<pid_t>, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            // Reap those that are our own children; the rest are reaped by init.
            for pid in pids { waitpid(pid, nil, WNOHANG) }
            if pids.allSatisfy({ kill($0, 0) != 0 && errno == ESRCH }) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    // MARK: Mounts

    /// Detaches every mount at or under `directory`, deepest first (dockerd's bind
    /// mount of its data-root, network namespaces, container shm). Returns what
    /// is still mounted afterwards.
    static func unmountAll(under directory: String) -> [String] {
        for _ in 0..<5 {
            let mounts = mountPoints(under: directory)
            if mounts.isEmpty { return [] }
            for mount in mounts.sorted(by: { $0.count > $1.count }) { umount2(mount, Int32(MNT_DETACH)) }
        }
        return mountPoints(under: directory)
    }

    static func mountPoints(under directory: String) -> [String] {
        let table = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return table.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { return nil }
            let point = unescape(String(fields[4]))
            return point == directory || point.hasPrefix(directory + "/") ? point : nil
        }
    }

    /// mountinfo writes space, tab, newline and backslash as octal escapes.
    private static func unescape(_ field: String) -> String {
        var result = field
        for (escape, character) in [("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")] {
            result = result.replacingOccurrences(of: escape, with: character)
        }
        return result
    }

    // MARK: Cgroups

    /// `/sys/fs/cgroup/<name>` (v2) and `/sys/fs/cgroup/<hierarchy>/<name>` (v1).
    private static func cgroupDirectories(named name: String) -> [String] {
        let root = "/sys/fs/cgroup"
        let hierarchies = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).map { root + "/" + $0 }
        var directories: [String] = []
        for parent in [root] + hierarchies {
            let top = parent + "/" + name
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: top, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            directories.append(top)
            let children = (try? FileManager.default.contentsOfDirectory(atPath: top)) ?? []
            for child in children {
                var childIsDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: top + "/" + child, isDirectory: &childIsDirectory), childIsDirectory.boolValue {
                    directories.append(top + "/" + child)
                }
            }
        }
        return directories
    }

    /// Removes the fixture's cgroup (children first; a cgroup goes once its last
    /// process has exited, hence the retries).
    private static func removeCgroup(named name: String) async -> [String] {
        for _ in 0..<50 {
            let directories = cgroupDirectories(named: name)
            if directories.isEmpty { return [] }
            for directory in directories.sorted(by: { $0.count > $1.count }) { rmdir(directory) }
            if cgroupDirectories(named: name).isEmpty { return [] }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return ["cgroups left: \(cgroupDirectories(named: name))"]
    }
}
