import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// The stopped Envoys (SIGSTOP, a debugger) that watch the server's xds directory: the
/// reason an Envoy takes no update, or listens on no port, that an operator must hear
/// before starting another Envoy, which would share the ports with the stopped one.
/// Other Envoys (another server's, a container's sidecar) watch other directories.
enum StoppedEnvoys {
    /// Their process ids, in order. Reads every process's name, and the descriptors
    /// of the stopped Envoys: meant for a finding that Envoy takes nothing, not for
    /// every registration.
    static func find(watching directory: String, root: String = "/proc") -> [Int32] {
        var info = stat()
        guard stat(directory, &info) == 0 else { return [] }
        let watched = WatchedInode(inode: UInt64(info.st_ino), device: UInt64(info.st_dev))
        return ShimProcesses.entryNames(in: root).compactMap(Int32.init).sorted().filter { pid in
            guard let name = ProcessTable.name(of: pid, root: root), name.hasPrefix("envoy"),
                  ProcessTable.isStopped(pid, root: root) else { return false }
            return watches(pid, watched, root: root)
        }
    }

    /// A directory as inotify's descriptor info names it: its inode, and its device
    /// in the kernel's own encoding (major << 20 | minor), both in hexadecimal there.
    struct WatchedInode: Equatable {
        var inode: UInt64
        var kernelDevice: UInt64

        /// From stat(2)'s `st_dev`, in glibc's encoding.
        init(inode: UInt64, device: UInt64) {
            self.inode = inode
            let major = ((device >> 32) & 0xffff_f000) | ((device >> 8) & 0xfff)
            let minor = ((device >> 12) & 0xffff_ff00) | (device & 0xff)
            kernelDevice = major << 20 | minor
        }

        /// From a line of `/proc/PID/fdinfo/FD`: `inotify wd:1 ino:1a2b sdev:800001 …`.
        init?(fdinfoLine line: Substring) {
            guard line.hasPrefix("inotify ") else { return nil }
            var inode: UInt64?
            var device: UInt64?
            for field in line.split(separator: " ") {
                if field.hasPrefix("ino:") { inode = UInt64(field.dropFirst(4), radix: 16) }
                if field.hasPrefix("sdev:") { device = UInt64(field.dropFirst(5), radix: 16) }
            }
            guard let inode, let device else { return nil }
            self.inode = inode
            kernelDevice = device
        }
    }

    /// Whether process `pid` has an inotify watch on `watched`.
    static func watches(_ pid: Int32, _ watched: WatchedInode, root: String = "/proc") -> Bool {
        ShimProcesses.entryNames(in: "\(root)/\(pid)/fdinfo").contains { descriptor in
            guard let info = SystemFile.read("\(root)/\(pid)/fdinfo/\(descriptor)") else { return false }
            return String(decoding: info, as: UTF8.self).split(separator: "\n").contains { WatchedInode(fdinfoLine: $0) == watched }
        }
    }
}
