import EdshimCore
import EdshimShim

// Shim mode first, with nothing else started: dockerd runs one of these per
// published port, so it must not pay for the other modes.
if let shimArguments = ModeSelection.shimArguments(CommandLine.arguments) {
    ShimProcesses.nameCurrentProcess()
    ShimMode.run(shimArguments)
}

// udp-proxy too runs on this one thread, before the first `await` starts Swift's
// runtime (CommandRunner.runWithoutConcurrency): SIGINT and SIGTERM, blocked from
// here on, reach its signalfd with their sender, even one that comes while its
// command line is parsed (it then exits 0 once the port is bound).
if ModeSelection.startsUDPProxy(CommandLine.arguments) {
    UDPProxyMode.blockTerminationSignalsEarly()
    CommandRunner.runWithoutConcurrency()
}

await CommandRunner.run()
