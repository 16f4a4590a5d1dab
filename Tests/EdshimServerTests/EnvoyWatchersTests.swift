@testable import EdshimServer
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("EnvoyWatchers")
struct EnvoyWatchersTests {
    @Test("inotify's descriptor info names a watched inode by inode, the superblock's device and its file handle; other lines name none")
    func fdinfoLine() {
        let line: Substring = "inotify wd:1 ino:3e2a sdev:800001 mask:fce ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:2a3e0000b1f2c3d4"
        let key = EnvoyWatchers.WatchKey(fdinfoLine: line)
        #expect(key?.fields == ["ino:3e2a", "sdev:800001", "fhandle-type:1", "f_handle:2a3e0000b1f2c3d4"])
        // Another watch of the same inode (its own wd and mask) is the same key.
        #expect(EnvoyWatchers.WatchKey(fdinfoLine: "inotify wd:7 ino:3e2a sdev:800001 mask:82 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:2a3e0000b1f2c3d4") == key)
        // The same inode number on another btrfs subvolume: another handle.
        #expect(EnvoyWatchers.WatchKey(fdinfoLine: "inotify wd:1 ino:3e2a sdev:800001 mask:fce ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:2a3e00000000ffff") != key)
        #expect(EnvoyWatchers.WatchKey(fdinfoLine: "pos:\t0") == nil)
        #expect(EnvoyWatchers.WatchKey(fdinfoLine: "inotify wd:1 mask:2") == nil)
    }

    @Test("the key of a directory is learned from a watch of this process's own, and a process watching that directory is found by it; one not watching it is not")
    func watchesThroughProc() throws {
        let directory = NSTemporaryDirectory() + "edshim-watched-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let key = try #require(EnvoyWatchers.WatchKey.learn(directory))
        #expect(!EnvoyWatchers.watches(getpid(), key), "the watch it learned from is closed")
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(inotify_add_watch(fd, directory, UInt32(IN_MOVED_TO)) >= 0)
        #expect(EnvoyWatchers.watches(getpid(), key))
    }
}
