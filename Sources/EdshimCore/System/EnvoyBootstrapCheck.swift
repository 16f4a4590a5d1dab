#if canImport(Glibc)
import Glibc
#endif

/// Whether an Envoy process runs a bootstrap that `edshim bootstrap` printed: the
/// Envoy an edshim server configures. With the server down, a shim serves its port
/// beside such an Envoy's listener left from before (the server withdraws or takes
/// it over once back), but never beside another Envoy of the host, whose port it must
/// not share any more than docker-proxy would.
public enum EnvoyBootstrapCheck {
    /// Read from the process's command line: the file of `-c` or `--config-path`
    /// (through `/proc/PID/root` and `cwd`, so an Envoy in a container counts too) or
    /// the text of `--config-yaml` holds `BootstrapDocument.marker`. False when it
    /// cannot be read (another user's process, to a shim not run as root).
    public static func runsEdshimBootstrap(_ pid: Int32, root: String = "/proc") -> Bool {
        guard let argv = ProcessTable.commandLine(of: pid, root: root) else { return false }
        let marker = Array(BootstrapDocument.marker.utf8)
        var index = 1
        while index < argv.count {
            let argument = argv[index]
            index += 1
            let (flag, inlineValue) = split(argument)
            guard ["-c", "--config-path", "--config-yaml"].contains(flag) else { continue }
            let value: String
            if let inlineValue {
                value = inlineValue
            } else if index < argv.count {
                value = argv[index]
                index += 1
            } else {
                continue
            }
            if flag == "--config-yaml" {
                if Array(value.utf8).firstRange(of: marker) != nil { return true }
                continue
            }
            let path = value.hasPrefix("/") ? "\(root)/\(pid)/root\(value)" : "\(root)/\(pid)/cwd/\(value)"
            // A regular file only: opening a FIFO would block.
            var info = stat()
            guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            if let text = SystemFile.read(path, limit: 64 * 1024), text.firstRange(of: marker) != nil { return true }
        }
        return false
    }

    /// `--flag=value` into its flag and value; any other argument as it is.
    private static func split(_ argument: String) -> (flag: String, value: String?) {
        guard argument.hasPrefix("-"), let equals = argument.firstIndex(of: "=") else { return (argument, nil) }
        return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
    }
}
