import Cluster
import Foundation
import PacketWire

/// The `ip kube-proxy` table kube-proxy's nftables mode writes for a service table on its first full sync
/// (pkg/proxy/nftables/proxier.go of 1.31-1.33, setupNFTables and syncProxyRules), as the transaction it gives
/// `nft -f`: the base chains and their jumps, the sets and verdict maps (service-ips, service-nodeports,
/// no-endpoint-services, firewall-ips, ...), then per Service port its elements and its service-, local-,
/// external-, firewall- and endpoint- chains, `numgen random` balancing and ClientIP affinity sets.
///
/// Node ports are served on `nodeAddresses` (the `nodeport-ips` set, kube-proxy's `--nodeport-addresses primary`
/// default), or on every local address but loopback when there are none. kube-proxy walks Services in Go map
/// order; here they come in the table's stable order.
public enum NFTablesRules {
    public static func render(_ table: ServiceTable, options: KubeProxyOptions = KubeProxyOptions()) -> String {
        var transaction = NFTablesTransaction(options: options)
        transaction.writeSetup()
        for entry in table.entries { transaction.writeServicePort(entry) }
        return transaction.lines.joined(separator: "\n") + "\n"
    }

    /// The first 8 characters of the standard base32 of SHA-256(name), a dash, and the name itself, cut to 240
    /// characters (kube-proxy's hashAndTruncate).
    static func hashAndTruncate(_ name: String) -> String {
        let hashed = ChainNames.hashPrefix(name, characters: 8) + "-" + name
        return hashed.count > 240 ? String(hashed.prefix(237)) + "..." : hashed
    }

    /// `ns/name/proto/portName`: the base of a Service port's chains (the port name may be empty).
    static func servicePortBase(_ entry: ServicePortEntry) -> String {
        hashAndTruncate("\(entry.name.namespace)/\(entry.name.name)/\(entry.frontend.serviceProtocol.lowercaseName)/"
            + entry.name.port)
    }

    /// `ns/name/proto/portName__ip/port`: the base of an endpoint's chain and affinity set.
    static func endpointBase(_ entry: ServicePortEntry, _ endpoint: Backend) -> String {
        hashAndTruncate("\(entry.name.namespace)/\(entry.name.name)/\(entry.frontend.serviceProtocol.lowercaseName)/"
            + "\(entry.name.port)__\(endpoint.address)/\(endpoint.port)")
    }
}

/// One nft transaction in kube-proxy's operation order, written as knftables writes it.
struct NFTablesTransaction {
    let options: KubeProxyOptions
    private(set) var lines: [String] = []
    private var createdChains: Set<String> = []

    init(options: KubeProxyOptions) { self.options = options }

    private static let table = "ip kube-proxy"
    private static let addressKey = "ipv4_addr . inet_proto . inet_service : verdict"
    private static let portKey = "inet_proto . inet_service : verdict"
    private var mark: String { IPTablesRules.markText(options.masqueradeBit) }

    // MARK: Operations

    private mutating func add(_ text: String) { lines.append(text) }

    private mutating func addChain(_ name: String, _ body: String? = nil) {
        add("add chain \(Self.table) \(name)" + (body.map { " { \($0) ; }" } ?? ""))
    }

    /// kube-proxy's ensureChain: created and flushed once per transaction.
    private mutating func ensureChain(_ name: String) {
        guard createdChains.insert(name).inserted else { return }
        addChain(name)
        add("flush chain \(Self.table) \(name)")
    }

    private mutating func addRule(_ chain: String, _ rule: String, comment: String? = nil) {
        add("add rule \(Self.table) \(chain) \(rule)" + (comment.map { " comment \(quoted($0))" } ?? ""))
    }

    private mutating func addSet(_ kind: String, _ name: String, _ attributes: [String]) {
        add("add \(kind) \(Self.table) \(name) { " + attributes.map { $0 + " ; " }.joined() + "}")
    }

    private mutating func addElement(_ container: String, _ key: [String], comment: String? = nil,
                                     verdict: String? = nil)
    {
        add("add element \(Self.table) \(container) { " + key.joined(separator: " . ")
            + (comment.map { " comment \(quoted($0))" } ?? "") + (verdict.map { " : \($0)" } ?? "") + " }")
    }

    /// Go's `%q` of the comments kube-proxy writes (names and fixed texts: no characters to escape but these).
    private func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    // MARK: Fixed part

    /// setupNFTables on the first sync of a kube-proxy process: base chains recreated, jump chains, the
    /// masquerade chains, the sets and maps and the rules that consult them, then every container flushed.
    mutating func writeSetup() {
        add("add table \(Self.table) { comment \(quoted("rules for kube-proxy")) ; }")
        let baseChains = [
            ("filter-prerouting", "filter", "prerouting", -110), ("filter-input", "filter", "input", -110),
            ("filter-forward", "filter", "forward", -110), ("filter-output", "filter", "output", -110),
            ("filter-output-post-dnat", "filter", "output", -90), ("nat-prerouting", "nat", "prerouting", -100),
            ("nat-output", "nat", "output", -100), ("nat-postrouting", "nat", "postrouting", 100),
        ]
        for (name, _, _, _) in baseChains {
            addChain(name)
            add("delete chain \(Self.table) \(name)")
        }
        for (name, type, hook, priority) in baseChains {
            addChain(name, "type \(type) hook \(hook) priority \(priority)")
            add("flush chain \(Self.table) \(name)")
        }
        let jumps = [
            ("nodeport-endpoints-check", "filter-input", "ct state new "),
            ("service-endpoints-check", "filter-input", "ct state new "),
            ("service-endpoints-check", "filter-forward", "ct state new "),
            ("service-endpoints-check", "filter-output", "ct state new "),
            ("firewall-check", "filter-prerouting", "ct state new "),
            ("firewall-check", "filter-output", "ct state new "),
            ("services", "nat-output", ""), ("services", "nat-prerouting", ""),
            ("masquerading", "nat-postrouting", ""),
            ("cluster-ips-check", "filter-forward", "ct state new "),
            ("cluster-ips-check", "filter-output-post-dnat", "ct state new "),
        ]
        for (destination, source, condition) in jumps {
            ensureChain(destination)
            addRule(source, "\(condition)jump \(destination)")
        }
        for chain in ["services", "cluster-ips-check", "masquerading", "mark-for-masquerade"] { ensureChain(chain) }
        addRule("mark-for-masquerade", "mark set mark or \(mark)")
        addRule("masquerading", "mark and \(mark) == 0 return")
        addRule("masquerading", "mark set mark xor \(mark)")
        addRule("masquerading", "masquerade fully-random")

        addSet("set", "cluster-ips", ["type ipv4_addr", "comment \(quoted("Active ClusterIPs"))"])
        addRule("cluster-ips-check", "ip daddr @cluster-ips reject",
                comment: "Reject traffic to invalid ports of ClusterIPs")
        if !options.serviceCIDRs.isEmpty {
            addRule("cluster-ips-check", "ip daddr { \(options.serviceCIDRs.joined(separator: ",")) } drop",
                    comment: "Drop traffic to unallocated ClusterIPs")
        }
        addSet("set", "nodeport-ips", ["type ipv4_addr", "comment \(quoted("IPs that accept NodePort traffic"))"])
        let nodePortsEverywhere = options.nodeAddresses.isEmpty
        if nodePortsEverywhere {
            add("delete set \(Self.table) nodeport-ips")
        } else {
            add("flush set \(Self.table) nodeport-ips")
            for address in options.nodeAddresses { addElement("nodeport-ips", ["\(address)"]) }
        }
        addSet("map", "no-endpoint-services", ["type \(Self.addressKey)",
            "comment \(quoted("vmap to drop or reject packets to services with no endpoints"))"])
        addSet("map", "no-endpoint-nodeports", ["type \(Self.portKey)",
            "comment \(quoted("vmap to drop or reject packets to service nodeports with no endpoints"))"])
        addChain("reject-chain", "comment \(quoted("helper for @no-endpoint-services / @no-endpoint-nodeports"))")
        add("flush chain \(Self.table) reject-chain")
        addRule("reject-chain", "reject")
        addRule("service-endpoints-check", "ip daddr . meta l4proto . th dport vmap @no-endpoint-services")
        let nodePortDestinations = nodePortsEverywhere ? "ip daddr != 127.0.0.0/8" : "ip daddr @nodeport-ips"
        addRule("nodeport-endpoints-check",
                "\(nodePortDestinations) meta l4proto . th dport vmap @no-endpoint-nodeports")
        addSet("map", "firewall-ips", ["type \(Self.addressKey)",
            "comment \(quoted("destinations that are subject to LoadBalancerSourceRanges"))"])
        addRule("firewall-check", "ip daddr . meta l4proto . th dport vmap @firewall-ips")
        addSet("map", "service-ips", ["type \(Self.addressKey)",
            "comment \(quoted("ClusterIP, ExternalIP and LoadBalancer IP traffic"))"])
        addSet("map", "service-nodeports", ["type \(Self.portKey)", "comment \(quoted("NodePort traffic"))"])
        addRule("services", "ip daddr . meta l4proto . th dport vmap @service-ips")
        let nodePortMatch = nodePortsEverywhere ? "fib daddr type local \(nodePortDestinations)" : nodePortDestinations
        addRule("services", "\(nodePortMatch) meta l4proto . th dport vmap @service-nodeports")
        add("flush set \(Self.table) cluster-ips")
        for map in ["service-ips", "firewall-ips", "no-endpoint-services", "no-endpoint-nodeports",
                    "service-nodeports"]
        {
            add("flush map \(Self.table) \(map)")
        }
    }

    // MARK: One Service port

    /// The elements and chains of one Service port, in syncProxyRules' order.
    mutating func writeServicePort(_ entry: ServicePortEntry) {
        let name = entry.name.description
        let proto = entry.frontend.serviceProtocol.lowercaseName
        let port = "\(entry.frontend.port)"
        let base = NFTablesRules.servicePortBase(entry)
        let clusterChain = "service-" + base
        let localChain = "local-" + base
        let externalChain = "external-" + base
        let firewallChain = "firewall-" + base

        let endpoints = EndpointCategories(entry, nodeName: options.nodeName)
        let (cluster, local) = (endpoints.cluster, endpoints.local)
        let reachable = endpoints.reachable(in: entry)
        let hasEndpoints = endpoints.hasEndpoints
        let usesClusterChain = !cluster.isEmpty
        let usesLocalChain = !local.isEmpty
        let hasInternalEndpoints = endpoints.hasInternalEndpoints
        let hasExternalEndpoints = endpoints.hasExternalEndpoints
        let internalChain = entry.internalTrafficLocal ? localChain : clusterChain
        let externalPolicyChain = entry.externalTrafficLocal ? localChain : clusterChain
        let usesExternalChain = hasEndpoints && entry.isExternallyAccessible
        let usesFirewallChain = !entry.loadBalancerIPs.isEmpty && !entry.loadBalancerSourceRanges.isEmpty
        // No endpoints anywhere: reject; endpoints, but none on this node for a Local policy: drop.
        let refusal = hasEndpoints ? "drop" : "goto reject-chain"

        for position in reachable { ensureChain(endpointChain(entry, position)) }
        if usesClusterChain { ensureChain(clusterChain) }
        if usesLocalChain { ensureChain(localChain) }
        if usesExternalChain { ensureChain(externalChain) }

        let clusterIP = "\(entry.frontend.address)"
        addElement("cluster-ips", [clusterIP])
        if hasInternalEndpoints {
            addElement("service-ips", [clusterIP, proto, port], verdict: "goto \(internalChain)")
        } else {
            addElement("no-endpoint-services", [clusterIP, proto, port], comment: name, verdict: refusal)
        }
        for address in entry.externalIPs {
            if hasEndpoints { addElement("service-ips", ["\(address)", proto, port], verdict: "goto \(externalChain)") }
            if !hasExternalEndpoints {
                addElement("no-endpoint-services", ["\(address)", proto, port], comment: name, verdict: refusal)
            }
        }
        if usesFirewallChain { ensureChain(firewallChain) }
        for address in entry.loadBalancerIPs {
            if hasEndpoints { addElement("service-ips", ["\(address)", proto, port], verdict: "goto \(externalChain)") }
            if usesFirewallChain {
                addElement("firewall-ips", ["\(address)", proto, port], verdict: "goto \(firewallChain)")
            }
        }
        if !hasExternalEndpoints {
            for address in entry.loadBalancerIPs {
                addElement("no-endpoint-services", ["\(address)", proto, port], comment: name, verdict: refusal)
            }
        }
        if let nodePort = entry.nodePort {
            if hasEndpoints {
                addElement("service-nodeports", [proto, "\(nodePort)"], verdict: "goto \(externalChain)")
            }
            if !hasExternalEndpoints {
                addElement("no-endpoint-nodeports", [proto, "\(nodePort)"], comment: name, verdict: refusal)
            }
        }

        if hasInternalEndpoints, let cidr = options.clusterCIDR {
            addRule(internalChain, "ip daddr \(clusterIP) \(proto) dport \(port) ip saddr != \(cidr) "
                + "jump mark-for-masquerade")
        }
        if usesExternalChain {
            if entry.externalTrafficLocal {
                if let cidr = options.clusterCIDR {
                    addRule(externalChain, "ip saddr \(cidr) goto \(clusterChain)",
                            comment: "short-circuit pod traffic")
                }
                addRule(externalChain, "fib saddr type local jump mark-for-masquerade",
                        comment: "masquerade local traffic")
                addRule(externalChain, "fib saddr type local goto \(clusterChain)",
                        comment: "short-circuit local traffic")
            } else {
                addRule(externalChain, "jump mark-for-masquerade")
            }
            if hasExternalEndpoints { addRule(externalChain, "goto \(externalPolicyChain)") }
        }
        if usesFirewallChain {
            var sources = entry.loadBalancerSourceRanges.map(\.description)
            let allowFromNode = entry.loadBalancerSourceRanges.contains { range in
                options.nodeAddresses.first.map(range.contains) ?? false
            }
            if allowFromNode { sources += entry.loadBalancerIPs.map(\.description) }
            addRule(firewallChain, "ip saddr != { \(sources.joined(separator: " , ")) } drop")
        }
        if let affinity = entry.affinity {
            for position in reachable {
                addSet("set", affinitySet(entry, position),
                       ["type ipv4_addr", "flags dynamic,timeout", "timeout \(affinity.timeoutSeconds)s"])
            }
        }
        if usesClusterChain { writeBalancing(entry, clusterChain, over: cluster) }
        if usesLocalChain { writeBalancing(entry, localChain, over: local) }
        for position in reachable {
            let endpoint = entry.backends[position]
            let chain = endpointChain(entry, position)
            addRule(chain, "ip saddr \(endpoint.address) jump mark-for-masquerade")
            if entry.affinity != nil { addRule(chain, "update @\(affinitySet(entry, position)) { ip saddr }") }
            addRule(chain, "meta l4proto \(proto) dnat to \(endpoint)")
        }
    }

    /// writeServiceToEndpointRules: the affinity lookups, then one `numgen random` verdict map over the endpoints.
    private mutating func writeBalancing(_ entry: ServicePortEntry, _ chain: String, over positions: [Int]) {
        if entry.affinity != nil {
            for position in positions {
                addRule(chain, "ip saddr @\(affinitySet(entry, position)) goto \(endpointChain(entry, position))")
            }
        }
        let choices = positions.enumerated().map { "\($0.offset) : goto \(endpointChain(entry, $0.element))" }
        addRule(chain, "numgen random mod \(positions.count) vmap { \(choices.joined(separator: " , ")) }")
    }

    private func endpointChain(_ entry: ServicePortEntry, _ position: Int) -> String {
        "endpoint-" + NFTablesRules.endpointBase(entry, entry.backends[position])
    }

    private func affinitySet(_ entry: ServicePortEntry, _ position: Int) -> String {
        "affinity-" + NFTablesRules.endpointBase(entry, entry.backends[position])
    }
}
