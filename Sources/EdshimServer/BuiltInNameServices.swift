import CEdshimLinux

/// The server looks users, groups and host names up only where glibc itself can:
/// /etc/passwd, /etc/group, /etc/hosts and DNS. `make release` links edshim fully
/// static (the shim starts once per published port), and such a process cannot load
/// the modules nsswitch.conf may name besides (`systemd`, `sss`, `ldap`, `resolve`,
/// `mdns`…): glibc crashes in libnss_systemd on a name /etc/group lacks. Debug builds
/// are confined the same way, so that every build looks in the same places.
enum BuiltInNameServices {
    /// Before any lookup: the socket group, the Docker host's name.
    static func confine() throws {
        guard edshim_use_built_in_name_services() == 0 else {
            throw ServerError("glibc refused to confine name lookups to /etc and DNS (__nss_configure_lookup)")
        }
    }
}
