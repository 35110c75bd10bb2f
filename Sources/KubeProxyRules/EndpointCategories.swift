import Cluster

/// kube-proxy's `CategorizeEndpoints` for one Service port on this node, and what every proxy mode derives from
/// it (positions in the entry's `backends`).
struct EndpointCategories {
    /// The cluster's usable endpoints, when some traffic of the Service port is balanced over them.
    let cluster: [Int]
    /// This node's usable endpoints, when a Local policy of the Service port is in use.
    let local: [Int]
    /// Some endpoint anywhere takes connections.
    let hasEndpoints: Bool
    /// ClusterIP traffic has somewhere to go (not a Local internal policy without local endpoints).
    let hasInternalEndpoints: Bool
    /// External traffic has somewhere to go (not a Local external policy without local endpoints).
    let hasExternalEndpoints: Bool

    init(_ entry: ServicePortEntry, nodeName: String?) {
        cluster = entry.usesClusterEndpoints ? entry.usableBackends : []
        local = entry.usesLocalEndpoints ? entry.usableBackends(onNode: nodeName) : []
        hasEndpoints = !entry.usableBackends.isEmpty
        hasInternalEndpoints = hasEndpoints && !(entry.internalTrafficLocal && local.isEmpty)
        hasExternalEndpoints = hasEndpoints && !(entry.externalTrafficLocal && local.isEmpty)
    }

    /// The endpoints some chain leads to, in the entry's order (kube-proxy's allLocallyReachableEndpoints).
    func reachable(in entry: ServicePortEntry) -> [Int] {
        entry.backends.indices.filter { cluster.contains($0) || local.contains($0) }
    }
}
