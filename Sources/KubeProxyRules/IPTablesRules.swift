import Cluster
import Foundation

/// Options of kube-proxy that change the rules it writes.
public struct KubeProxyOptions: Sendable {
    /// `--cluster-cidr`: traffic to a ClusterIP from outside it is marked for masquerade. Without it, no
    /// masquerade rule is written for ClusterIPs (kube-proxy's no-op local detector).
    public var clusterCIDR: String?
    /// `--masquerade-bit` (default 14): the mark is 1 << bit, printed as Go's `%#08x`.
    public var masqueradeBit = 14
    /// Whether iptables supports `MASQUERADE --random-fully` (every iptables of the last years does).
    public var randomFully = true

    public init(clusterCIDR: String? = nil) { self.clusterCIDR = clusterCIDR }
}

/// The nat and filter tables kube-proxy's iptables mode feeds to `iptables-restore --noflush` for a
/// service table (pkg/proxy/iptables/proxier.go, syncProxyRules), in the order it writes them. kube-proxy
/// walks Services in Go map order; here they come in the table's stable order.
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
            let name = entry.name.description
            let proto = entry.frontend.serviceProtocol.lowercaseName
            let match = "-m \(proto) -p \(proto) -d \(entry.frontend.address) --dport \(entry.frontend.port)"
            let endpoints = entry.usableBackends.map { entry.backends[$0] }
            guard !endpoints.isEmpty else {
                filterRules.append(
                    "-A KUBE-SERVICES -m comment --comment \"\(name) has no endpoints\" \(match) -j REJECT")
                continue
            }
            let serviceChain = ChainNames.service(entry)
            let endpointChains = endpoints.map { ChainNames.endpoint(entry, $0) }
            natChains.append(serviceChain)
            natChains += endpointChains
            let clusterIPComment = "-m comment --comment \"\(name) cluster IP\""
            natRules.append("-A KUBE-SERVICES \(clusterIPComment) \(match) -j \(serviceChain)")
            if let cidr = options.clusterCIDR {
                natRules.append("-A \(serviceChain) \(clusterIPComment) \(match) ! -s \(cidr) -j KUBE-MARK-MASQ")
            }
            func toEndpoint(_ index: Int) -> String {
                let comment = " -m comment --comment \"\(name) -> \(endpoints[index])\""
                return "-A \(serviceChain)" + (endpointComments ? comment : "")
            }
            let sepComment = endpointComments ? " -m comment --comment \(name)" : ""
            if let affinity = entry.affinity {
                for (index, chain) in endpointChains.enumerated() {
                    natRules.append("\(toEndpoint(index)) -m recent --name \(chain) --rcheck --seconds "
                        + "\(affinity.timeoutSeconds) --reap -j \(chain)")
                }
            }
            for (index, chain) in endpointChains.enumerated() {
                let remaining = endpoints.count - index
                let statistic = remaining > 1
                    ? " -m statistic --mode random --probability \(probability(remaining))" : ""
                natRules.append("\(toEndpoint(index))\(statistic) -j \(chain)")
            }
            for (endpoint, chain) in zip(endpoints, endpointChains) {
                natRules.append("-A \(chain)\(sepComment) -s \(endpoint.address) -j KUBE-MARK-MASQ")
                let recent = entry.affinity == nil ? "" : " -m recent --name \(chain) --set"
                natRules.append("-A \(chain)\(sepComment)\(recent) -m \(proto) -p \(proto) -j DNAT "
                    + "--to-destination \(endpoint)")
            }
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

    private static func chainLine(_ chain: String) -> String { ":\(chain) - [0:0]" }
}
