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
}

/// Picks backends for new connections.
struct BackendSelector {
    let mode: LoadBalancingMode
    let seed: UInt64
    /// Next rotation position per service port (round-robin only).
    private var rotation: [Int]

    init(mode: LoadBalancingMode, seed: UInt64, servicePorts: Int) {
        self.mode = mode
        self.seed = seed
        rotation = [Int](repeating: 0, count: servicePorts)
    }

    /// Index into `usable` for a new connection of `flow` on service port `entry`.
    mutating func choose(entry: Int, usableCount: Int, flow: FlowKey, timestamp: Int64) -> Int {
        switch mode {
        case .random:
            return FlowHash.index(FlowHash.hash(flow, seed: seed, salt: UInt64(bitPattern: timestamp)),
                                  count: usableCount)
        case .roundRobin:
            let position = rotation[entry] % usableCount
            rotation[entry] = position + 1
            return position
        }
    }
}
