import Cluster
import PacketWire

/// ClientIP session affinity as kube-proxy's iptables mode programs it with `-m recent`: a new connection
/// from a client that opened one to the same Service port within the timeout goes to the same endpoint
/// (`--rcheck --seconds T --reap`), and every new connection records its client and endpoint (`--set`).
/// Only new connections touch it, since the nat table sees only a connection's first packet.
/// (xt_recent also caps each endpoint's list at `ip_list_tot`, 100 clients by default; that cap is not modelled.)
struct AffinityTable {
    private struct Key: Hashable {
        var entry: Int32
        var client: UInt32
    }

    private struct Record {
        var backend: Int32
        var lastSet: Int64
    }

    private var records: [Key: Record] = [:]

    /// The endpoint `client` is pinned to on service port `entry`, if it is recent enough and still usable.
    func pinnedBackend(entry: Int, client: IPv4Address, in servicePort: ServicePortEntry, now: Int64) -> Int? {
        guard let affinity = servicePort.affinity,
              let record = records[Key(entry: Int32(entry), client: client.value)],
              now - record.lastSet <= Int64(affinity.timeoutSeconds) * 1_000_000_000
        else { return nil }
        let backend = Int(record.backend)
        return servicePort.usableBackends.contains(backend) ? backend : nil
    }

    /// Records a new connection's endpoint for its client (`-m recent --set`).
    mutating func set(entry: Int, client: IPv4Address, backend: Int, now: Int64) {
        records[Key(entry: Int32(entry), client: client.value)] = Record(backend: Int32(backend), lastSet: now)
    }
}
