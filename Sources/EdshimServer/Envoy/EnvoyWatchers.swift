import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// The Envoys (processes named `envoy…`) that watch the server's xds directory with
/// inotify, as Envoy's filesystem subscriptions do: whether an Envoy runs at all, and
/// whether it is stopped (SIGSTOP), which an operator must hear before starting a
/// second Envoy, which would share the ports with it. Other Envoys (another server's,
/// a container's sidecar) watch other directories.
enum EnvoyWatchers {
    /// An Envoy watching the directory.
    struct Watcher: Equatable, Sendable {
        var pid: Int32
        /// Stopped by SIGSTOP (state `T` in any of its threads; a stop reaches them one
        /// by one). A debugger's stop (`t`) is not counted: SIGCONT does not end it,
        /// and a tracer such as strace stops threads at every system call.
        var stopped: Bool
    }

    /// The Envoys watching `directory`, in pid order; nil when the kernel's name for
    /// the directory cannot be learned (no inotify). Reads every process's name and
    /// the Envoys' descriptors: meant for a finding that Envoy takes nothing, not for
    /// every registration.
    static func find(watching directory: String, root: String = "/proc") -> [Watcher]? {
        guard let key = WatchKey.learn(directory, root: root) else { return nil }
        let own = getpid()
        return ShimProcesses.entryNames(in: root).compactMap(Int32.init).sorted().compactMap { pid in
            guard pid != own, let name = ProcessTable.name(of: pid, root: root), name.hasPrefix("envoy"),
                  watches(pid, key, root: root) else { return nil }
            return Watcher(pid: pid, stopped: ProcessTable.isStopped(pid, root: root))
        }
    }

    /// A watched inode as `/proc/PID/fdinfo` shows it (`inotify wd:1 ino:1a2b
    /// sdev:800001 … fhandle-type:1 f_handle:…`): its inode, the superblock's device and
    /// its file handle. Learned from a watch of the server's own rather than from
    /// stat(2), whose device differs on btrfs subvolumes.
    struct WatchKey: Equatable {
        var fields: [Substring]

        init?(fdinfoLine line: Substring) {
            guard line.hasPrefix("inotify ") else { return nil }
            fields = line.split(separator: " ").filter { field in
                ["ino:", "sdev:", "fhandle-type:", "f_handle:"].contains { field.hasPrefix($0) }
            }
            guard fields.contains(where: { $0.hasPrefix("ino:") }), fields.contains(where: { $0.hasPrefix("sdev:") }) else { return nil }
        }

        /// The key of `directory`: from a watch this process adds, read back.
        static func learn(_ directory: String, root: String = "/proc") -> WatchKey? {
            let fd = inotify_init1(Int32(IN_CLOEXEC))
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            guard inotify_add_watch(fd, directory, UInt32(IN_ATTRIB)) >= 0,
                  let info = SystemFile.read("\(root)/self/fdinfo/\(fd)") else { return nil }
            return String(decoding: info, as: UTF8.self).split(separator: "\n").lazy.compactMap(WatchKey.init(fdinfoLine:)).first
        }
    }

    /// Whether process `pid` has an inotify watch on the inode `key` names.
    static func watches(_ pid: Int32, _ key: WatchKey, root: String = "/proc") -> Bool {
        ShimProcesses.entryNames(in: "\(root)/\(pid)/fdinfo").contains { descriptor in
            guard let info = SystemFile.read("\(root)/\(pid)/fdinfo/\(descriptor)") else { return false }
            return String(decoding: info, as: UTF8.self).split(separator: "\n").contains { WatchKey(fdinfoLine: $0) == key }
        }
    }
}
