import Cluster
import PacketWire

/// ClientIP session affinity as kube-proxy's iptables mode programs it with `-m recent`: a new connection
/// from a client that opened one to the same Service port within the timeout goes to the same endpoint
/// (`--rcheck --seconds T --reap`), and every new connection records its client and endpoint (`--set`).
/// Only new connections touch it, since the nat table sees only a connection's first packet.
/// (xt_recent also caps each endpoint's list at `ip_list_tot`, 100 clients by default; that cap is not modelled.)
struct AffinityTable {
    private struct Key: Hashable {
        var frontend: Frontend
        var client: IPv4Address
    }

    /// The endpoint by address and port, so that a record outlives changes of the endpoint list.
    private struct Record {
        var address: IPv4Address
        var port: UInt16
        var lastSet: Int64
    }

    private var records: [Key: Record] = [:]

    /// The position of the endpoint `client` is pinned to on `servicePort`, if the pin is recent enough and
    /// the endpoint is still usable (kube-proxy writes `--rcheck` rules only for the endpoints it balances to).
    func pinnedBackend(client: IPv4Address, in servicePort: ServicePortEntry, now: Int64) -> Int? {
        guard let affinity = servicePort.affinity,
              let record = records[Key(frontend: servicePort.frontend, client: client)],
              now - record.lastSet <= Int64(affinity.timeoutSeconds) * 1_000_000_000
        else { return nil }
        return servicePort.usableBackends.first {
            servicePort.backends[$0].address == record.address && servicePort.backends[$0].port == record.port
        }
    }

    /// Records a new connection's endpoint for its client (`-m recent --set`).
    mutating func set(client: IPv4Address, backend: Backend, on servicePort: ServicePortEntry, now: Int64) {
        records[Key(frontend: servicePort.frontend, client: client)] =
            Record(address: backend.address, port: backend.port, lastSet: now)
    }
}
