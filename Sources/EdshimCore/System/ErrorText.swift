#if canImport(Glibc)
import Glibc
#endif

/// How a failed system call reads in a message: the C library's words for its
/// `errno` (`strerror`), as docker-proxy's and the shell's messages say them.
public enum ErrorText {
    /// The words for error number `code` ("No such file or directory").
    public static func describe(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}
