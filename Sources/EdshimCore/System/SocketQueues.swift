import CEdshimLinux

/// What waits in a socket's queues, from the kernel.
enum SocketQueues {
    /// The bytes written on the stream socket `fd` that its peer has not read yet
    /// (SIOCOUTQ), or -1 when the kernel does not say.
    static func unreadBytes(_ fd: Int32) -> Int32 {
        edshim_unread_bytes(fd)
    }
}
