import ArgumentParser
import EdshimCore
import EdshimShim

/// `edshim shim …`: the docker-proxy drop-in, spelled out.
struct ShimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shim",
        abstract: "Publish one port, as docker-proxy does (what dockerd runs).",
        discussion: ShimInvocation.usage
    )

    @Argument(parsing: .captureForPassthrough, help: "docker-proxy flags: -proto, -host-ip, -host-port, -container-ip, -container-port, -use-listen-fd.")
    var flags: [String] = []

    func run() throws {
        ShimMode.run(flags)
    }
}
