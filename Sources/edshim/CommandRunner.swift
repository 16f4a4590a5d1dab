import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import EdshimShim

/// Runs every mode but the shim: parsed by ArgumentParser, async commands on Swift
/// concurrency. (An explicit async function, so `run()` resolves to the async
/// overload of `AsyncParsableCommand`.)
enum CommandRunner {
    static func run() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            try refuseHelpOnUnknownMode(arguments)
            var command = try EdshimCommand.parseAsRoot(UDPProxyCommand.helpAliased(arguments))
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // What the command printed first (status's table, when the server did not
            // answer) ends before the error, not cut by it where both go to one file.
            fflush(nil)
            // udp-proxy started as dockerd starts a proxy (status pipe on fd 3) reports a
            // refused command line there too, as the shim does; the help is no refusal.
            if arguments.first == UDPProxyCommand.configuration.commandName, EdshimCommand.exitCode(for: error) != .success {
                UDPProxyMode.reportRefusal(EdshimCommand.message(for: error))
            }
            EdshimCommand.exit(withError: error)
        }
    }

    /// `edshim help bogus` would print the root help and exit 0 (ArgumentParser's
    /// `help` ignores names it does not know): a typo in a script goes unnoticed.
    private static func refuseHelpOnUnknownMode(_ arguments: [String]) throws {
        guard arguments.first == "help", let name = arguments.dropFirst().first else { return }
        let modes = EdshimCommand.configuration.subcommands.compactMap { $0.configuration.commandName }
        guard modes.contains(name) || name == "help" || name.hasPrefix("-") else {
            throw ValidationError("no mode named \"\(name)\": edshim help takes one of \(modes.joined(separator: ", "))")
        }
    }
}
