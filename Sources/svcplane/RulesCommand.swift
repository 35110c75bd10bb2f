import ArgumentParser
import KubeProxyRules
import PacketWire

/// `svcplane rules`: what kube-proxy would program for the loaded cluster.
struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Print what kube-proxy would program for the cluster (iptables, nftables or IPVS mode).",
        discussion: """
            ClusterIP, NodePort, LoadBalancer (status ingress IPs) and external IPs, internal and external traffic \
            policies, session affinity, masquerade, as kube-proxy 1.29-1.33 writes them: iptables mode's nat and \
            filter tables (iptables-restore input, or as iptables-save shows them), nftables mode's `ip kube-proxy` \
            table (the transaction it gives nft -f on its first sync), IPVS mode's virtual servers (as ipvsadm -Ln \
            shows them, or ipvsadm -Sn for ipvsadm-restore).
            """)

    /// Proxy modes whose rules svcplane renders.
    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case iptables
        case nftables
        case ipvs
    }

    /// How the rules are printed.
    enum Format: String, ExpressibleByArgument, CaseIterable {
        /// What kube-proxy hands the kernel's tool: iptables-restore or nft -f input, ipvsadm-restore input.
        case restore
        /// iptables mode: what iptables-save shows once the rules are loaded.
        case iptablesSave = "iptables-save"
        /// IPVS mode: what ipvsadm -Ln shows.
        case list
    }

    @OptionGroup var cluster: ManifestOptions

    @Option(help: "kube-proxy mode.")
    var mode: Mode = .iptables

    @Option(help: """
        restore: the input kube-proxy gives iptables-restore or nft -f (ipvsadm -Sn in IPVS mode); \
        iptables-save: the iptables rules as iptables-save shows them once loaded (prefix lengths, match order, \
        --set-xmark, stored probabilities); list: the IPVS virtual servers as ipvsadm -Ln shows them. \
        Default: list in IPVS mode, restore otherwise.
        """)
    var format: Format?

    @Option(name: .customLong("cluster-cidr"), help: """
        kube-proxy's --cluster-cidr: ClusterIP traffic from outside it is marked for masquerade.
        """)
    var clusterCIDR: String?

    @Option(name: .customLong("node-name"), help: """
        The node's name, for Local traffic policies (endpoints with this nodeName are local; all are without it).
        """)
    var nodeName: String?

    @Option(name: .customLong("node-ip"), help: ArgumentHelp("""
        An address of the node (repeatable): IPVS mode serves node ports on each, nftables mode lists them in \
        nodeport-ips (without any, node ports are served on every local address).
        """, valueName: "address"))
    var nodeIPs: [IPv4Address] = []

    @Option(name: .customLong("service-cidr"), help: ArgumentHelp("""
        A Service CIDR (--service-cluster-ip-range; repeatable): nftables mode drops traffic to its unallocated \
        addresses.
        """, valueName: "cidr"))
    var serviceCIDRs: [IPv4Network] = []

    func validate() throws {
        switch (mode, format) {
        case (.iptables, .list?), (.nftables, .list?):
            throw ValidationError("--format list is the IPVS view; use --mode ipvs.")
        case (.nftables, .iptablesSave?), (.ipvs, .iptablesSave?):
            throw ValidationError("--format iptables-save needs --mode iptables.")
        default:
            break
        }
    }

    func run() throws {
        let table = try cluster.serviceTable()
        var options = KubeProxyOptions(clusterCIDR: clusterCIDR, nodeName: nodeName)
        options.nodeAddresses = nodeIPs
        options.serviceCIDRs = serviceCIDRs.map(\.description)
        let text: String
        switch (mode, format) {
        case (.iptables, .iptablesSave?):
            text = IPTablesSave.render(restorePayload: IPTablesRules.render(table, options: options))
        case (.iptables, _):
            text = IPTablesRules.render(table, options: options)
        case (.nftables, _):
            text = NFTablesRules.render(table, options: options)
        case (.ipvs, .restore?):
            text = IPVSRules.render(table, options: options, format: .save)
        case (.ipvs, _):
            text = IPVSRules.render(table, options: options, format: .list)
        }
        Output.standardOutput(text)
    }
}
