import Cluster
import PacketWire

/// ClientIP session affinity as kube-proxy's iptables mode programs it with `-m recent`: a new connection
/// from a client that opened one to the same Service port within the timeout goes to the same endpoint
/// (`--rcheck --seconds T --reap`), and every new connection records its client and endpoint (`--set`).
/// Only new connections touch it, since the nat table sees only a connection's first packet.
/// Each endpoint's list holds at most `ip_list_tot` clients (100, xt_recent's default); a new client evicts
/// the one set longest ago, so the table stays bounded under a flood.
struct AffinityTable {
    static let listCapacity = 100

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

    /// One endpoint's list, as xt_recent names it (the KUBE-SEP chain): a frontend and an endpoint.
    private struct ListKey: Hashable {
        var frontend: Frontend
        var address: IPv4Address
        var port: UInt16
    }

    private var records: [Key: Record] = [:]
    /// Clients of each list, least recently set first.
    private var lists: [ListKey: [IPv4Address]] = [:]

    /// The position of the endpoint `client` is pinned to on `servicePort`, if the pin is recent enough and
    /// the endpoint is still among `candidates` (kube-proxy writes `--rcheck` rules only for the endpoints it
    /// balances to).
    func pinnedBackend(client: IPv4Address, in servicePort: ServicePortEntry, among candidates: [Int], now: Int64)
        -> Int?
    {
        guard let affinity = servicePort.affinity,
              let record = records[Key(frontend: servicePort.frontend, client: client)],
              now - record.lastSet <= Int64(affinity.timeoutSeconds) * 1_000_000_000
        else { return nil }
        return candidates.first {
            servicePort.backends[$0].address == record.address && servicePort.backends[$0].port == record.port
        }
    }

    /// Records a new connection's endpoint for its client (`-m recent --set`).
    mutating func set(client: IPv4Address, backend: Backend, on servicePort: ServicePortEntry, now: Int64) {
        let key = Key(frontend: servicePort.frontend, client: client)
        if let previous = records[key] {
            let list = ListKey(frontend: servicePort.frontend, address: previous.address, port: previous.port)
            lists[list]?.removeAll { $0 == client }
        }
        records[key] = Record(address: backend.address, port: backend.port, lastSet: now)
        let list = ListKey(frontend: servicePort.frontend, address: backend.address, port: backend.port)
        lists[list, default: []].append(client)
        if let count = lists[list]?.count, count > Self.listCapacity, let oldest = lists[list]?.removeFirst() {
            records[Key(frontend: servicePort.frontend, client: oldest)] = nil
        }
    }
}
