#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `main` of a fuzz target built without libFuzzer: runs the target's checks over
/// the files named on the command line (directories: every file in them), so a saved
/// input can be replayed under a debugger or on a toolchain without libFuzzer.
public enum CorpusReplay {
    /// Replays `CommandLine.arguments` through `check`; exits 2 on an unreadable path.
    public static func run(_ check: ([UInt8]) -> Void) {
        var replayed = 0
        for path in CommandLine.arguments.dropFirst() {
            for file in files(at: path) {
                guard let bytes = read(file) else {
                    print("cannot read \(file)")
                    exit(2)
                }
                check(bytes)
                replayed += 1
            }
        }
        print("replayed \(replayed) input(s) without a finding")
    }

    private static func files(at path: String) -> [String] {
        guard let directory = opendir(path) else { return [path] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if !name.hasPrefix(".") { names.append("\(path)/\(name)") }
        }
        return names.sorted()
    }

    private static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            bytes += buffer.prefix(count)
            if count < buffer.count { return ferror(file) == 0 ? bytes : nil }
        }
    }
}
