import PacketWire

/// The transport protocols a Service port can name.
public enum ServiceProtocol: String, Sendable, Hashable, CaseIterable {
    case tcp = "TCP"
    case udp = "UDP"
    case sctp = "SCTP"

    /// IP protocol number.
    public var number: UInt8 {
        switch self {
        case .tcp: IPProtocol.tcp
        case .udp: IPProtocol.udp
        case .sctp: 132
        }
    }

    /// Lower-case name as conntrack and kube-proxy print it.
    public var lowercaseName: String { rawValue.lowercased() }
}

/// `namespace/name` plus `:port` when the Service port is named, as kube-proxy names a service port.
public struct ServicePortName: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var namespace: String
    public var name: String
    public var port: String

    public var description: String { port.isEmpty ? "\(namespace)/\(name)" : "\(namespace)/\(name):\(port)" }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.description < rhs.description }
}

/// Where a new connection arrives: a virtual IP, port and protocol.
public struct Frontend: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var port: UInt16
    public var serviceProtocol: ServiceProtocol

    public init(address: IPv4Address, port: UInt16, serviceProtocol: ServiceProtocol) {
        self.address = address
        self.port = port
        self.serviceProtocol = serviceProtocol
    }

    public var description: String { "\(address):\(port)/\(serviceProtocol.lowercaseName)" }

    /// The three in one word, which is what is hashed (the default would hash the protocol's raw String).
    private var word: UInt64 { UInt64(address.value) << 24 | UInt64(port) << 8 | UInt64(serviceProtocol.number) }

    public func hash(into hasher: inout Hasher) { hasher.combine(word) }

    /// As a key looked up per new connection: see `FlowHash.tableHash`.
    public func _rawHashValue(seed: Int) -> Int { FlowHash.tableHash(word, seed: seed) }
}

/// One endpoint of a service port: a pod address and target port with its conditions.
public struct Backend: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var port: UInt16
    public var ready: Bool
    public var serving: Bool
    public var terminating: Bool
    /// The Pod's name when the endpoint names it.
    public var podName: String?
    public var nodeName: String?

    public init(address: IPv4Address, port: UInt16, ready: Bool = true, serving: Bool = true,
                terminating: Bool = false, podName: String? = nil, nodeName: String? = nil)
    {
        self.address = address
        self.port = port
        self.ready = ready
        self.serving = serving
        self.terminating = terminating
        self.podName = podName
        self.nodeName = nodeName
    }

    public var description: String { "\(address):\(port)" }
}

/// ClientIP session affinity of a Service.
public struct SessionAffinity: Hashable, Sendable {
    /// How long a client stays pinned without traffic (default 10800, at most 86400).
    public var timeoutSeconds: Int
}

/// A node port: served on every address of the node.
public struct NodePort: Hashable, Sendable, CustomStringConvertible {
    public var port: UInt16
    public var serviceProtocol: ServiceProtocol

    public init(port: UInt16, serviceProtocol: ServiceProtocol) {
        self.port = port
        self.serviceProtocol = serviceProtocol
    }

    public var description: String { "*:\(port)/\(serviceProtocol.lowercaseName)" }
}

/// Whether traffic reached a Service port from inside the cluster (its ClusterIP) or from outside (a node port,
/// an external IP, a load balancer IP): the two have their own traffic policies and masquerade rules.
public enum TrafficScope: Sendable {
    case cluster
    case external
}

/// One Service port, load balanced: its frontends, all its endpoints and those that take new connections.
public struct ServicePortEntry: Sendable {
    public var name: ServicePortName
    /// The ClusterIP frontend.
    public var frontend: Frontend
    /// The node port of a NodePort or LoadBalancer Service.
    public var nodePort: UInt16?
    /// `spec.externalIPs`, served on the Service port.
    public var externalIPs: [IPv4Address] = []
    /// `status.loadBalancer.ingress` IPs of a LoadBalancer Service, served on the Service port.
    public var loadBalancerIPs: [IPv4Address] = []
    /// `internalTrafficPolicy: Local`: ClusterIP traffic goes to endpoints on this node only.
    public var internalTrafficLocal = false
    /// `externalTrafficPolicy: Local` on a NodePort or LoadBalancer Service: external traffic goes to endpoints
    /// on this node only, unmasqueraded.
    public var externalTrafficLocal = false
    /// `spec.healthCheckNodePort` of a LoadBalancer Service with `externalTrafficPolicy: Local`.
    public var healthCheckNodePort: UInt16?
    /// `spec.loadBalancerSourceRanges`: when set, only these clients may reach the load balancer IPs.
    public var loadBalancerSourceRanges: [IPv4Network] = []
    /// Every endpoint, in kube-proxy's order: by the text "ip:port" (so 10.0.1.10 comes before 10.0.1.2).
    public var backends: [Backend]
    /// Indices into `backends` that take new connections: the ready ones, or when none is ready the
    /// serving-and-terminating ones (kube-proxy's terminating fallback).
    public var usableBackends: [Int]
    public var affinity: SessionAffinity?

    public init(name: ServicePortName, frontend: Frontend, backends: [Backend], usableBackends: [Int],
                affinity: SessionAffinity?)
    {
        self.name = name
        self.frontend = frontend
        self.backends = backends
        self.usableBackends = usableBackends
        self.affinity = affinity
    }

    /// Whether the Service port is reached from outside the cluster: a node port, external or load balancer IPs.
    public var isExternallyAccessible: Bool { nodePort != nil || !externalIPs.isEmpty || !loadBalancerIPs.isEmpty }

    /// Whether some traffic is balanced over the whole cluster's endpoints: ClusterIP traffic under policy
    /// Cluster, or any external traffic (a Local external policy still short-circuits pods and the node to them).
    public var usesClusterEndpoints: Bool { !internalTrafficLocal || isExternallyAccessible }

    /// Whether some traffic is balanced over this node's endpoints only.
    public var usesLocalEndpoints: Bool { internalTrafficLocal || (externalTrafficLocal && isExternallyAccessible) }

    /// The usable endpoints on node `nodeName` (kube-proxy's local endpoints): the ready ones there, or when none
    /// is ready the serving-and-terminating ones there. Every usable endpoint when `nodeName` is nil.
    public func usableBackends(onNode nodeName: String?) -> [Int] {
        guard let nodeName else { return usableBackends }
        return Self.usable(backends.indices.filter { backends[$0].nodeName == nodeName }, of: backends)
    }

    /// The endpoints among `positions` (of `backends`) that take new connections: the ready ones, or when none
    /// is ready the serving-and-terminating ones (kube-proxy's terminating fallback).
    public static func usable(_ positions: [Int], of backends: [Backend]) -> [Int] {
        let ready = positions.filter { backends[$0].ready }
        return ready.isEmpty ? positions.filter { backends[$0].serving && backends[$0].terminating } : ready
    }

    /// The frontends reached from outside the cluster that share the Service port (external and LB IPs).
    public var externalFrontends: [Frontend] {
        (externalIPs + loadBalancerIPs).map {
            Frontend(address: $0, port: frontend.port, serviceProtocol: frontend.serviceProtocol)
        }
    }
}

/// The compiled, immutable view of the cluster that the dataplane serves.
public struct ServiceTable: Sendable {
    /// Service ports in a stable order (by service port name, then frontend).
    public let entries: [ServicePortEntry]
    /// ClusterIP frontend to index in `entries`.
    public let entryIndex: [Frontend: Int]
    /// External and load balancer IP frontends to index in `entries`.
    public let externalIndex: [Frontend: Int]
    /// Node ports to index in `entries`.
    public let nodePortIndex: [NodePort: Int]
    /// Service ports that exist but are not load balanced (headless, ExternalName, IPv6-only).
    public let unservedPorts: [String]
    /// Every port a frontend or node port listens on: a packet to another port is no Service's, without a
    /// hash lookup (replies to clients, which conntrack has not matched, are most of those).
    private let frontendPorts: PortSet

    public init(entries: [ServicePortEntry], unservedPorts: [String] = []) {
        self.entries = entries
        var index: [Frontend: Int] = [:]
        var external: [Frontend: Int] = [:]
        var nodePorts: [NodePort: Int] = [:]
        for (position, entry) in entries.enumerated() {
            index[entry.frontend] = position
            for frontend in entry.externalFrontends { external[frontend] = position }
            if let port = entry.nodePort {
                nodePorts[NodePort(port: port, serviceProtocol: entry.frontend.serviceProtocol)] = position
            }
        }
        entryIndex = index
        externalIndex = external
        nodePortIndex = nodePorts
        self.unservedPorts = unservedPorts
        frontendPorts = PortSet(index.keys.map(\.port) + external.keys.map(\.port) + nodePorts.keys.map(\.port))
    }

    public func entry(for frontend: Frontend) -> ServicePortEntry? {
        entryIndex[frontend].map { entries[$0] }
    }

    /// The Service port a packet's destination reaches, and from where: a ClusterIP, then an external or load
    /// balancer IP, then a node port on one of `nodeAddresses`.
    public func lookup(_ destination: Frontend, nodeAddresses: [IPv4Address]) -> (index: Int, scope: TrafficScope)? {
        guard frontendPorts.contains(destination.port) else { return nil }
        if let index = entryIndex[destination] { return (index, .cluster) }
        if externalIndex.isEmpty && nodePortIndex.isEmpty { return nil }
        if let index = externalIndex[destination] { return (index, .external) }
        if nodeAddresses.contains(destination.address),
           let index = nodePortIndex[NodePort(port: destination.port, serviceProtocol: destination.serviceProtocol)]
        {
            return (index, .external)
        }
        return nil
    }
}
