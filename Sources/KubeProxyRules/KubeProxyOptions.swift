import PacketWire

/// Options of kube-proxy that change the rules it writes.
public struct KubeProxyOptions: Sendable {
    /// `--cluster-cidr`: traffic to a ClusterIP from outside it is marked for masquerade, and external traffic
    /// from inside it short-circuits a Local policy. Without it, neither rule is written (kube-proxy's no-op
    /// local detector).
    public var clusterCIDR: String?
    /// The node's name: endpoints with this `nodeName` are local, for Local traffic policies (every endpoint is
    /// local without it).
    public var nodeName: String?
    /// The node's addresses: IPVS mode serves a node port on each (kube-proxy takes every local address),
    /// nftables mode puts them in its `nodeport-ips` set (every local address when there are none).
    public var nodeAddresses: [IPv4Address] = []
    /// The Service CIDRs (`--service-cluster-ip-range`): nftables mode drops traffic to unallocated ClusterIPs in them.
    public var serviceCIDRs: [String] = []
    /// `--masquerade-bit` (default 14): the mark is 1 << bit, printed as Go's `%#08x`.
    public var masqueradeBit = 14
    /// Whether iptables supports `MASQUERADE --random-fully` (every iptables of the last years does).
    public var randomFully = true

    public init(clusterCIDR: String? = nil, nodeName: String? = nil) {
        self.clusterCIDR = clusterCIDR
        self.nodeName = nodeName
    }
}
