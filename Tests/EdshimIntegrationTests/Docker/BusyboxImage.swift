import Foundation

/// The tests' image: a root filesystem of the machine's static busybox (Debian's
/// busybox-static), every applet linked in /bin, and a web root, made into an image
/// with `docker import`. No registry, no network: it takes well under a second.
enum BusyboxImage {
    /// The image every fixture has: `docker run … edshim-busybox:test httpd -f -p 80 -h /www`.
    static let name = "edshim-busybox:test"
    /// The body of `/www/index.html` in the image.
    static let indexHTML = "<h1>edshim busybox test page</h1>\n"
    static let busybox = "/bin/busybox"

    /// Builds the image with `docker` (a CLI invocation prefix) inside `directory`.
    static func build(in directory: String, tar: String, docker: ([String]) async throws -> String) async throws {
        try requireStaticBusybox()
        let root = directory + "/rootfs"
        let files = FileManager.default
        for folder in ["bin", "www", "etc", "tmp", "root"] {
            try files.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
        try files.setAttributes([.posixPermissions: 0o1777], ofItemAtPath: root + "/tmp")
        try files.copyItem(atPath: busybox, toPath: root + "/bin/busybox")
        let applets = try await CapturedCommand.check(busybox, ["--list"], in: directory)
        for applet in applets.split(separator: "\n") where applet != "busybox" && !applet.contains("/") {
            try files.createSymbolicLink(atPath: root + "/bin/" + applet, withDestinationPath: "busybox")
        }
        try indexHTML.write(toFile: root + "/www/index.html", atomically: false, encoding: .utf8)
        try "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
            .write(toFile: root + "/etc/passwd", atomically: false, encoding: .utf8)
        try "root:x:0:\nnogroup:x:65534:\n".write(toFile: root + "/etc/group", atomically: false, encoding: .utf8)

        let tarball = directory + "/rootfs.tar"
        _ = try await CapturedCommand.check(tar, ["--numeric-owner", "--owner=0", "--group=0", "-C", root, "-cf", tarball, "."], in: directory)
        _ = try await docker(["import", tarball, name])
        try? files.removeItem(atPath: root)
        try? files.removeItem(atPath: tarball)
    }

    /// A dynamically linked busybox (Debian's `busybox` package) would not run in an
    /// image with no libc: refuse it with what to install.
    private static func requireStaticBusybox() throws {
        let install = "install busybox-static (scripts/ensure-test-deps.sh --docker-only)"
        guard let handle = FileHandle(forReadingAtPath: busybox) else { throw TestFailure("no \(busybox): \(install)") }
        defer { try? handle.close() }
        let elf = [UInt8](handle.readData(ofLength: 1 << 16))
        func integer(_ offset: Int, _ size: Int) -> Int {
            (0..<size).reduce(0) { $0 | Int(elf[offset + $1]) << (8 * $1) }
        }
        guard elf.count >= 64, elf[0..<4] == [0x7F, 0x45, 0x4C, 0x46], elf[4] == 2 else {
            throw TestFailure("\(busybox) is not a 64-bit ELF executable: \(install)")
        }
        let (tableOffset, entrySize, entries) = (integer(0x20, 8), integer(0x36, 2), integer(0x38, 2))
        for index in 0..<entries {
            let offset = tableOffset + index * entrySize
            guard offset + 4 <= elf.count else { break }
            // PT_INTERP: the executable asks for a dynamic loader.
            if integer(offset, 4) == 3 { throw TestFailure("\(busybox) is dynamically linked: \(install)") }
        }
    }
}
