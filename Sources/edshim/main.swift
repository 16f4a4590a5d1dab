import EdshimCore
import EdshimShim

// Shim mode first, with nothing else started: dockerd runs one of these per
// published port, so it must not pay for the other modes.
if let shimArguments = ModeSelection.shimArguments(CommandLine.arguments) {
    ShimProcesses.nameCurrentProcess()
    ShimMode.run(shimArguments)
}

await CommandRunner.run()
