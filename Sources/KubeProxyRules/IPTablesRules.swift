import Cluster
import Foundation

/// The nat and filter tables kube-proxy's iptables mode feeds to `iptables-restore --noflush` for a
/// service table (pkg/proxy/iptables/proxier.go of 1.29, syncProxyRules), in the order it writes them.
/// kube-proxy walks Services in Go map order; here they come in the table's stable order.
public enum IPTablesRules {
    public static func render(_ table: ServiceTable, options: KubeProxyOptions = KubeProxyOptions()) -> String {
        let mark = markText(options.masqueradeBit)
        var filterRules: [String] = [
            "-A KUBE-FIREWALL -m comment --comment \"block incoming localnet connections\" -d 127.0.0.0/8 "
                + "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
        ]
        var natChains: [String] = []
        var natRules: [String] = [
            "-A KUBE-POSTROUTING -m mark ! --mark \(mark)/\(mark) -j RETURN",
            "-A KUBE-POSTROUTING -j MARK --xor-mark \(mark)",
            "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE"
                + (options.randomFully ? " --random-fully" : ""),
            "-A KUBE-MARK-MASQ -j MARK --or-mark \(mark)",
        ]
        // kube-proxy's "large cluster mode": past 1000 endpoints it leaves the comments off endpoint rules.
        let endpointComments = table.entries.reduce(0) { $0 + $1.usableBackends.count } <= 1000
        for entry in table.entries {
            var service = ServicePortRules(entry: entry, options: options, endpointComments: endpointComments)
            service.write()
            filterRules += service.filterRules
            natChains += service.natChains
            natRules += service.natRules
        }
        natRules.append("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the "
            + "last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
        filterRules += [
            "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
            "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark \(mark)/\(mark) "
                + "-j ACCEPT",
            "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate "
                + "RELATED,ESTABLISHED -j ACCEPT",
        ]
        let filterChains = ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS",
                            "KUBE-PROXY-FIREWALL", "KUBE-FIREWALL"]
        let natFixedChains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
        var lines = ["*filter"] + filterChains.map(chainLine) + filterRules + ["COMMIT"]
        lines += ["*nat"] + (natFixedChains + natChains).map(chainLine) + natRules + ["COMMIT"]
        return lines.joined(separator: "\n") + "\n"
    }

    /// `fmt.Sprintf("%0.10f", 1.0/float64(n))`: the same correctly rounded decimal of the same double.
    static func probability(_ remaining: Int) -> String { String(format: "%.10f", 1.0 / Double(remaining)) }

    /// Go's `%#08x` of the mark: `0x00004000` for bit 14.
    static func markText(_ bit: Int) -> String {
        let hex = String(1 << bit, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - hex.count)) + hex
    }

    static func chainLine(_ chain: String) -> String { ":\(chain) - [0:0]" }
}

/// The rules of one Service port, in the order kube-proxy writes them: its KUBE-SERVICES and KUBE-NODEPORTS
/// entries (or the filter REJECT/DROP that replace them), the ClusterIP masquerade rule, then the KUBE-EXT-,
/// KUBE-SVC- and KUBE-SVL- chains and the KUBE-SEP- chain of every endpoint they reach.
struct ServicePortRules {
    let entry: ServicePortEntry
    let options: KubeProxyOptions
    let endpointComments: Bool
    private(set) var filterRules: [String] = []
    private(set) var natChains: [String] = []
    private(set) var natRules: [String] = []

    init(entry: ServicePortEntry, options: KubeProxyOptions, endpointComments: Bool) {
        self.entry = entry
        self.options = options
        self.endpointComments = endpointComments
    }

    private var name: String { entry.name.description }
    private var proto: String { entry.frontend.serviceProtocol.lowercaseName }
    private func match(_ address: some CustomStringConvertible) -> String {
        "-m \(proto) -p \(proto) -d \(address) --dport \(entry.frontend.port)"
    }

    mutating func write() {
        let endpoints = EndpointCategories(entry, nodeName: options.nodeName)
        let (cluster, local) = (endpoints.cluster, endpoints.local)
        let external = entry.isExternallyAccessible
        let hasEndpoints = endpoints.hasEndpoints
        let hasInternalEndpoints = endpoints.hasInternalEndpoints
        let hasExternalEndpoints = endpoints.hasExternalEndpoints
        let serviceChain = ChainNames.service(entry)
        let localChain = ChainNames.local(entry)
        let externalChain = ChainNames.external(entry)
        let internalChain = entry.internalTrafficLocal ? localChain : serviceChain
        let refusal = hasEndpoints ? "-m comment --comment \"\(name) has no local endpoints\"" : noEndpoints
        let refusalTarget = hasEndpoints ? "DROP" : "REJECT"

        let clusterIP = "-m comment --comment \"\(name) cluster IP\" \(match(entry.frontend.address))"
        if hasInternalEndpoints {
            natRules.append("-A KUBE-SERVICES \(clusterIP) -j \(internalChain)")
        } else {
            filterRules.append("-A KUBE-SERVICES \(refusal) \(match(entry.frontend.address)) -j \(refusalTarget)")
        }
        for address in entry.externalIPs {
            if hasEndpoints {
                natRules.append("-A KUBE-SERVICES -m comment --comment \"\(name) external IP\" \(match(address)) "
                    + "-j \(externalChain)")
            }
            if !hasExternalEndpoints {
                filterRules.append("-A KUBE-EXTERNAL-SERVICES \(refusal) \(match(address)) -j \(refusalTarget)")
            }
        }
        let firewallChain = ChainNames.firewall(entry)
        let usesFirewallChain = hasEndpoints && !entry.loadBalancerIPs.isEmpty
            && !entry.loadBalancerSourceRanges.isEmpty
        for address in entry.loadBalancerIPs {
            if hasEndpoints {
                natRules.append("-A KUBE-SERVICES -m comment --comment \"\(name) loadbalancer IP\" \(match(address)) "
                    + "-j \(usesFirewallChain ? firewallChain : externalChain)")
            }
            if usesFirewallChain {
                filterRules.append("-A KUBE-PROXY-FIREWALL -m comment --comment \"\(name) traffic not accepted by "
                    + "\(firewallChain)\" \(match(address)) -j DROP")
            }
        }
        if !hasExternalEndpoints {
            for address in entry.loadBalancerIPs {
                filterRules.append("-A KUBE-EXTERNAL-SERVICES \(refusal) \(match(address)) -j \(refusalTarget)")
            }
        }
        if let nodePort = entry.nodePort {
            let port = "-m \(proto) -p \(proto) --dport \(nodePort)"
            if hasEndpoints {
                natRules.append("-A KUBE-NODEPORTS -m comment --comment \(name) \(port) -j \(externalChain)")
            }
            if !hasExternalEndpoints {
                filterRules.append("-A KUBE-EXTERNAL-SERVICES \(refusal) -m addrtype --dst-type LOCAL \(port) "
                    + "-j \(refusalTarget)")
            }
        }
        if let healthCheck = entry.healthCheckNodePort {
            filterRules.append("-A KUBE-NODEPORTS -m comment --comment \"\(name) health check node port\" -m tcp -p tcp "
                + "--dport \(healthCheck) -j ACCEPT")
        }
        if hasInternalEndpoints, let cidr = options.clusterCIDR {
            natRules.append("-A \(internalChain) \(clusterIP) ! -s \(cidr) -j KUBE-MARK-MASQ")
        }
        if hasEndpoints && external {
            writeExternalChain(externalChain, service: serviceChain, local: localChain,
                               hasExternalEndpoints: hasExternalEndpoints)
        }
        if usesFirewallChain {
            natChains.append(firewallChain)
            for range in entry.loadBalancerSourceRanges {
                natRules.append("-A \(firewallChain) -m comment --comment \"\(name) loadbalancer IP\" -s \(range) "
                    + "-j \(externalChain)")
            }
            natRules.append("-A \(firewallChain) -m comment --comment \"other traffic to \(name) will be dropped by "
                + "KUBE-PROXY-FIREWALL\"")
        }
        if !cluster.isEmpty { writeBalancing(serviceChain, over: cluster) }
        if !local.isEmpty { writeBalancing(localChain, over: local) }
        for position in endpoints.reachable(in: entry) { writeEndpoint(entry.backends[position]) }
    }

    private var noEndpoints: String { "-m comment --comment \"\(name) has no endpoints\"" }

    /// KUBE-EXT-: masquerade and balance (policy Cluster), or short-circuit pods and the node itself and keep the
    /// rest on this node's endpoints (policy Local).
    private mutating func writeExternalChain(_ chain: String, service: String, local: String,
                                             hasExternalEndpoints: Bool)
    {
        natChains.append(chain)
        let destinations = "\(name) external destinations"
        if entry.externalTrafficLocal {
            if let cidr = options.clusterCIDR {
                natRules.append("-A \(chain) -m comment --comment \"pod traffic for \(destinations)\" -s \(cidr) "
                    + "-j \(service)")
            }
            natRules.append("-A \(chain) -m comment --comment \"masquerade LOCAL traffic for \(destinations)\" "
                + "-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ")
            natRules.append("-A \(chain) -m comment --comment \"route LOCAL traffic for \(destinations)\" "
                + "-m addrtype --src-type LOCAL -j \(service)")
        } else {
            natRules.append("-A \(chain) -m comment --comment \"masquerade traffic for \(destinations)\" "
                + "-j KUBE-MARK-MASQ")
        }
        if hasExternalEndpoints { natRules.append("-A \(chain) -j \(entry.externalTrafficLocal ? local : service)") }
    }

    /// A KUBE-SVC- or KUBE-SVL- chain: affinity checks, then one jump per endpoint with kube-proxy's
    /// probabilities (1/n, 1/(n-1), ..., the last without).
    private mutating func writeBalancing(_ chain: String, over positions: [Int]) {
        natChains.append(chain)
        let endpoints = positions.map { entry.backends[$0] }
        func toEndpoint(_ endpoint: Backend) -> String {
            "-A \(chain)" + (endpointComments ? " -m comment --comment \"\(name) -> \(endpoint)\"" : "")
        }
        if let affinity = entry.affinity {
            for endpoint in endpoints {
                let target = ChainNames.endpoint(entry, endpoint)
                natRules.append("\(toEndpoint(endpoint)) -m recent --name \(target) --rcheck --seconds "
                    + "\(affinity.timeoutSeconds) --reap -j \(target)")
            }
        }
        for (index, endpoint) in endpoints.enumerated() {
            let remaining = endpoints.count - index
            let statistic = remaining > 1
                ? " -m statistic --mode random --probability \(IPTablesRules.probability(remaining))" : ""
            natRules.append("\(toEndpoint(endpoint))\(statistic) -j \(ChainNames.endpoint(entry, endpoint))")
        }
    }

    /// A KUBE-SEP- chain: hairpin masquerade, then DNAT (recording the client for affinity).
    private mutating func writeEndpoint(_ endpoint: Backend) {
        let chain = ChainNames.endpoint(entry, endpoint)
        natChains.append(chain)
        let comment = endpointComments ? " -m comment --comment \(name)" : ""
        natRules.append("-A \(chain)\(comment) -s \(endpoint.address) -j KUBE-MARK-MASQ")
        let recent = entry.affinity == nil ? "" : " -m recent --name \(chain) --set"
        natRules.append("-A \(chain)\(comment)\(recent) -m \(proto) -p \(proto) -j DNAT --to-destination \(endpoint)")
    }
}
