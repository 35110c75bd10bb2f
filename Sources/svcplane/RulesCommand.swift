import ArgumentParser
import KubeProxyRules

/// `svcplane rules`: what kube-proxy would program for the loaded cluster.
struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Print the rules kube-proxy would program for the cluster (iptables-restore input).",
        discussion: """
            ClusterIP, NodePort, LoadBalancer (status ingress IPs) and external IPs, internal and external traffic \
            policies, session affinity, masquerade: the nat and filter tables of kube-proxy 1.29's iptables mode.
            """)

    /// Proxy modes whose rules svcplane renders.
    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case iptables
    }

    /// How the iptables rules are printed.
    enum Format: String, ExpressibleByArgument, CaseIterable {
        /// What kube-proxy feeds to iptables-restore.
        case restore
        /// What iptables-save shows once they are loaded.
        case iptablesSave = "iptables-save"
    }

    @OptionGroup var cluster: ManifestOptions

    @Option(help: "kube-proxy mode.")
    var mode: Mode = .iptables

    @Option(help: """
        restore: the input kube-proxy gives iptables-restore; iptables-save: the rules as iptables-save shows them \
        once loaded (prefix lengths, match order, --set-xmark, stored probabilities).
        """)
    var format: Format = .restore

    @Option(name: .customLong("cluster-cidr"), help: """
        kube-proxy's --cluster-cidr: ClusterIP traffic from outside it is marked for masquerade.
        """)
    var clusterCIDR: String?

    @Option(name: .customLong("node-name"), help: """
        The node's name, for Local traffic policies (endpoints with this nodeName are local; all are without it).
        """)
    var nodeName: String?

    func run() throws {
        let table = try cluster.serviceTable()
        let rules = IPTablesRules.render(table, options: KubeProxyOptions(clusterCIDR: clusterCIDR, nodeName: nodeName))
        Output.standardOutput(format == .restore ? rules : IPTablesSave.render(restorePayload: rules))
    }
}
