import ArgumentParser
import EdshimCore

/// `edshim version`.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print the version."
    )

    func run() {
        print(EdshimVersion.banner)
    }
}
