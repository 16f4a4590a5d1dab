import EdshimCore

/// Tells systemd (`Type=notify`) that the server is ready: one datagram on
/// `$NOTIFY_SOCKET`, as sd_notify(3) sends it. Without the variable, nothing happens.
enum SystemdNotifier {
    static func notify(_ state: String) {
        guard let value = ProcessEnvironment.value("NOTIFY_SOCKET") else { return }
        UnixDatagram.send(Array(state.utf8), to: value)
    }
}
