import Foundation

/// The programs the Docker fixture runs, found once. Missing ones fail with what to
/// install; they are not a reason to skip (`make test` installs them).
struct DockerTools: Sendable {
    let containerd: String
    let dockerd: String
    /// The docker CLI. Debian's own `/usr/bin/docker` (20.10, from docker.io) when
    /// present — the daemon's own client — else `docker` on PATH. A newer CLI (such
    /// as a 28.x in /usr/local/bin, first on PATH here) works too: it negotiates the
    /// API version down to dockerd 20.10's 1.41.
    let docker: String
    let ip: String
    let tar: String
    /// PATH for the daemons: containerd finds `containerd-shim-runc-v2` and the shim
    /// finds `runc` on it, and both live in sbin directories test runners may lack.
    let daemonPath: String

    static func find() throws -> DockerTools {
        let directories = SystemExecutables.searchDirectories
        func locate(_ name: String) throws -> String {
            guard let path = SystemExecutables.locate(name) else {
                throw TestFailure("\(name) not found (looked in \(directories.joined(separator: ":"))): run scripts/ensure-test-deps.sh --docker-only (Debian's docker.io)")
            }
            return path
        }
        for required in ["runc", "containerd-shim-runc-v2"] { _ = try locate(required) }
        let debianCLI = "/usr/bin/docker"
        return DockerTools(
            containerd: try locate("containerd"),
            dockerd: try locate("dockerd"),
            docker: FileManager.default.isExecutableFile(atPath: debianCLI) ? debianCLI : try locate("docker"),
            ip: try locate("ip"),
            tar: try locate("tar"),
            daemonPath: directories.joined(separator: ":")
        )
    }
}
