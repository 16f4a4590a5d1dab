import Logging
import ServiceLifecycle
import UnixSignals
#if canImport(Glibc)
import Glibc
#endif

/// SIGHUP, which operators and logrotate scripts send daemons to reload, would end
/// the server without a word (the default action) and leave its socket behind. The
/// server has nothing to reload (its settings are its flags; it logs to stderr), so
/// it says so and runs on.
struct HangupIgnored: Service {
    let logger: Logger

    /// Ignores SIGHUP from the server's first moment; `run` then logs each one.
    static func ignoreUntilTrapped() {
        signal(SIGHUP, SIG_IGN)
    }

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in hangups {
                logger.notice("SIGHUP ignored: the server has nothing to reload (its settings are its flags; restart it to change them)")
            }
        }
    }
}
