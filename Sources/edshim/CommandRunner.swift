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
            var command = try parse(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            fail(with: error, arguments: arguments)
        }
    }

    /// `edshim udp-proxy`, synchronously on the calling thread: called from `main`
    /// before its first `await`, it runs on the process's one thread, as the shim
    /// does. Swift's runtime, once started, parks the main thread with every signal
    /// unblocked (dispatch_main) and runs commands on threads of its own: a SIGINT or
    /// SIGTERM the kernel gave one of those would reach the proxy without its sender.
    static func runWithoutConcurrency() -> Never {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            var command = try parse(arguments)
            try command.run()
        } catch {
            fail(with: error, arguments: arguments)
        }
        exit(0)
    }

    private static func parse(_ arguments: [String]) throws -> any ParsableCommand {
        try refuseHelpOnUnknownMode(arguments)
        return try EdshimCommand.parseAsRoot(UDPProxyCommand.helpAliased(arguments))
    }

    private static func fail(with error: any Error, arguments: [String]) -> Never {
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
