@testable import EdshimServer
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("StoppedEnvoys")
struct StoppedEnvoysTests {
    @Test("inotify's descriptor info names a watched directory by inode and the kernel's device number, both hexadecimal")
    func fdinfoLine() {
        let line: Substring = "inotify wd:1 ino:3e2a sdev:800001 mask:fce ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:2a3e0000b1f2c3d4"
        // st_dev of device 8:1 as glibc encodes it: (8 << 8) | 1.
        #expect(StoppedEnvoys.WatchedInode(fdinfoLine: line) == StoppedEnvoys.WatchedInode(inode: 0x3e2a, device: 0x801))
        #expect(StoppedEnvoys.WatchedInode(fdinfoLine: line) != StoppedEnvoys.WatchedInode(inode: 0x3e2a, device: 0x802))
        // A minor number past 255 takes glibc's upper bits: 259:65541 (0x10005).
        let glibc: UInt64 = (259 << 8) | 0x05 | (0x10000 << 12)
        #expect(StoppedEnvoys.WatchedInode(inode: 1, device: glibc).kernelDevice == 259 << 20 | 0x10005)
        #expect(StoppedEnvoys.WatchedInode(fdinfoLine: "pos:\t0") == nil)
        #expect(StoppedEnvoys.WatchedInode(fdinfoLine: "inotify wd:1 ino:zz sdev:1") == nil)
    }

    @Test("a process watching a directory with inotify is found watching it, by the kernel's own account; one not watching it is not")
    func watchesThroughProc() throws {
        let directory = NSTemporaryDirectory() + "edshim-watched-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var info = stat()
        #expect(stat(directory, &info) == 0)
        let watched = StoppedEnvoys.WatchedInode(inode: UInt64(info.st_ino), device: UInt64(info.st_dev))
        #expect(!StoppedEnvoys.watches(getpid(), watched))
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(inotify_add_watch(fd, directory, UInt32(IN_MOVED_TO)) >= 0)
        #expect(StoppedEnvoys.watches(getpid(), watched))
    }
}
