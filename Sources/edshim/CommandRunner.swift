import ArgumentParser

/// Runs every mode but the shim: parsed by ArgumentParser, async commands on Swift
/// concurrency. (An explicit async function, so `run()` resolves to the async
/// overload of `AsyncParsableCommand`.)
enum CommandRunner {
    static func run() async {
        do {
            var command = try EdshimCommand.parseAsRoot(UDPProxyCommand.helpAliased(Array(CommandLine.arguments.dropFirst())))
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            EdshimCommand.exit(withError: error)
        }
    }
}
