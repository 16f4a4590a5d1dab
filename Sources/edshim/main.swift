import EdshimCore
import EdshimShim

// Shim mode first, with nothing else started: dockerd runs one of these per
// published port, so it must not pay for the other modes.
if let shimArguments = ModeSelection.shimArguments(CommandLine.arguments) {
    ShimProcesses.nameCurrentProcess()
    ShimMode.run(shimArguments)
}

// udp-proxy, like the shim, exits 0 on SIGINT or SIGTERM, even one that comes
// while its command line is parsed.
if ModeSelection.startsUDPProxy(CommandLine.arguments) {
    UDPProxyMode.catchTerminationSignalsEarly()
}

await CommandRunner.run()
