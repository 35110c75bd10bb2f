import Cluster
import PacketWire

/// How a new connection picks among a service port's usable endpoints.
public enum LoadBalancingMode: String, Sendable, CaseIterable {
    /// Uniform choice, as kube-proxy's iptables mode makes with `-m statistic --mode random`. The choice is
    /// a keyed hash of the seed, the flow's 5-tuple and its first packet's time, so it is reproducible and
    /// independent of which other flows were seen.
    case random
    /// Strict rotation through the endpoints in order, as IPVS's `rr` scheduler does.
    case roundRobin = "round-robin"
    /// Maglev consistent hashing as Cilium's `--bpf-lb-algorithm=maglev`: the flow's seeded hash picks a slot
    /// of the service port's Maglev table, so the same flow always lands on the same endpoint and an endpoint
    /// change moves only the flows of the slots it changes.
    case maglev
}

/// Picks backends for new connections.
struct BackendSelector {
    let mode: LoadBalancingMode
    let seed: UInt64
    let maglevSize: Int
    /// Next rotation position per service port (round-robin only).
    private var rotation: [Int]
    /// Maglev tables built on a service port's first new connection, keyed by the entry's index and whether the
    /// candidates are this node's endpoints: the cluster-wide and the local endpoints have a table each.
    private var maglevTables: [Int: MaglevTable] = [:]

    init(mode: LoadBalancingMode, seed: UInt64, servicePorts: Int, maglevSize: Int = MaglevTable.defaultSize) {
        self.mode = mode
        self.seed = seed
        self.maglevSize = maglevSize
        rotation = [Int](repeating: 0, count: servicePorts)
    }

    /// Index into `candidates` (positions in `entry.backends`) for a new connection of `flow` on service port
    /// `entryIndex`; `local` tells whether the candidates are this node's endpoints under a Local policy.
    mutating func choose(entryIndex: Int, entry: ServicePortEntry, candidates: [Int], local: Bool, flow: FlowKey,
                         timestamp: Int64) -> Int
    {
        switch mode {
        case .random:
            return FlowHash.index(FlowHash.hash(flow, seed: seed, salt: UInt64(bitPattern: timestamp)),
                                  count: candidates.count)
        case .roundRobin:
            let position = rotation[entryIndex] % candidates.count
            rotation[entryIndex] = position + 1
            return position
        case .maglev:
            let key = entryIndex << 1 | (local ? 1 : 0)
            if maglevTables[key] == nil {
                maglevTables[key] = MaglevTable(backends: candidates.map { entry.backends[$0] },
                                                serviceProtocol: entry.frontend.serviceProtocol, size: maglevSize)
            }
            return maglevTables[key]!.backend(forHash: FlowHash.hash(flow, seed: seed))
        }
    }
}
