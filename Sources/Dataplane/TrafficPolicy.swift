import Cluster
import PacketWire

/// Which endpoints a new connection may take, after the Service's traffic policies (kube-proxy's
/// `CategorizeEndpoints`): all usable endpoints, or under `Local` only those on this node (ready ones, else
/// serving-and-terminating ones). Without a node name every endpoint counts as local.
struct TrafficPolicy {
    /// Usable endpoints on this node, per service port (positions in its `backends`).
    private var local: [[Int]] = []
    private let nodeName: String?
    private let clusterCIDR: IPv4Network?

    init(table: ServiceTable, nodeName: String?, clusterCIDR: IPv4Network?) {
        self.nodeName = nodeName
        self.clusterCIDR = clusterCIDR
        load(table)
    }

    mutating func load(_ table: ServiceTable) {
        local = table.entries.map { $0.usableBackends(onNode: nodeName) }
    }

    /// Whether the Local policy governs a connection from `source` arriving by `scope`. External traffic from
    /// inside the cluster CIDR takes the cluster-wide path, as kube-proxy short-circuits it.
    func isLocal(_ entry: ServicePortEntry, scope: TrafficScope, source: IPv4Address) -> Bool {
        switch scope {
        case .cluster: entry.internalTrafficLocal
        case .external: entry.externalTrafficLocal && !(clusterCIDR?.contains(source) ?? false)
        }
    }

    /// The endpoints a new connection may take, and whether they are this node's only (a Local policy).
    func candidates(_ table: ServiceTable, entry index: Int, scope: TrafficScope, source: IPv4Address)
        -> (positions: [Int], local: Bool)
    {
        isLocal(table.entries[index], scope: scope, source: source)
            ? (local[index], true) : (table.entries[index].usableBackends, false)
    }

    /// Whether kube-proxy marks the connection for masquerade: ClusterIP traffic from outside the cluster CIDR,
    /// external traffic under policy Cluster, and a pod reaching itself (hairpin). Nothing without a cluster CIDR.
    func masquerades(_ entry: ServicePortEntry, scope: TrafficScope, source: IPv4Address, backend: IPv4Address)
        -> Bool
    {
        guard let clusterCIDR else { return false }
        if backend == source { return true }
        switch scope {
        case .cluster: return !clusterCIDR.contains(source)
        case .external: return !entry.externalTrafficLocal  // Local keeps the client's address
        }
    }
}
