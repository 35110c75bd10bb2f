import Cluster
import PacketWire

/// The IPVS virtual servers kube-proxy's ipvs mode programs for a service table (pkg/proxy/ipvs/proxier.go,
/// syncProxyRules and syncEndpoint), printed as `ipvsadm -Ln` (or `ipvsadm -Sn`) shows them.
///
/// Every Service port gets a virtual server on its ClusterIP, on each external and load balancer IP, and on each
/// node address at its node port; scheduler `rr`, `persistent T` under ClientIP affinity. Real servers are the
/// ready endpoints (the serving-and-terminating ones when none is ready), masqueraded, weight 1. A Local policy
/// keeps this node's endpoints, and falls back to the cluster's when the node has none: unlike iptables mode,
/// IPVS mode does not drop that traffic. The source ranges of a load balancer are ipset and iptables matters and
/// do not show here.
public enum IPVSRules {
    /// How the virtual servers are printed.
    public enum Format: Sendable {
        /// `ipvsadm -Ln`: the header, one line per virtual server, one per real server.
        case list
        /// `ipvsadm -Sn`: the `-A`/`-a` commands that restore them.
        case save
    }

    /// One virtual server and its real servers.
    struct VirtualServer {
        let address: IPv4Address
        let port: UInt16
        let serviceProtocol: ServiceProtocol
        let persistence: Int?
        let realServers: [Backend]
    }

    public static func render(_ table: ServiceTable, options: KubeProxyOptions = KubeProxyOptions(),
                              format: Format = .list) -> String
    {
        let servers = table.entries.flatMap { virtualServers(of: $0, options: options) }.sorted(by: ipvsadmOrder)
        var lines: [String] = []
        if format == .list {
            lines = ["IP Virtual Server version 1.2.1 (size=4096)",
                     "Prot LocalAddress:Port Scheduler Flags",
                     "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"]
        }
        for server in servers {
            let name = "\(server.address):\(server.port)"
            let destinations = server.realServers.sorted {
                ipvsadmOrder(($0.address, $0.port), ($1.address, $1.port))
            }
            switch format {
            case .list:
                let prot = padded(server.serviceProtocol.rawValue, 4)
                lines.append("\(prot) \(name) rr" + (server.persistence.map { " persistent \($0)" } ?? ""))
                for destination in destinations {
                    // ipvsadm's "  -> %-28s %-7s %-6d %-10u %-10u": padded even at the end of the line.
                    lines.append("  -> \(padded("\(destination)", 28)) Masq    1      0          0         ")
                }
            case .save:
                let service = "\(saveOption(server.serviceProtocol)) \(name)"
                lines.append("-A \(service) -s rr" + (server.persistence.map { " -p \($0)" } ?? ""))
                for destination in destinations { lines.append("-a \(service) -r \(destination) -m -w 1") }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The virtual servers of one Service port: ClusterIP (internal policy), then external IPs, load balancer
    /// IPs and node addresses at the node port (external policy).
    static func virtualServers(of entry: ServicePortEntry, options: KubeProxyOptions) -> [VirtualServer] {
        let endpoints = EndpointCategories(entry, nodeName: options.nodeName)
        // syncEndpoint: the local endpoints under a Local policy, the cluster's when there are none (or when the
        // policy is Cluster).
        func realServers(localPolicy: Bool) -> [Backend] {
            (localPolicy && !endpoints.local.isEmpty ? endpoints.local : endpoints.cluster).map { entry.backends[$0] }
        }
        let internalServers = realServers(localPolicy: entry.internalTrafficLocal)
        let externalServers = realServers(localPolicy: entry.externalTrafficLocal)
        func server(_ address: IPv4Address, _ port: UInt16, _ realServers: [Backend]) -> VirtualServer {
            VirtualServer(address: address, port: port, serviceProtocol: entry.frontend.serviceProtocol,
                          persistence: entry.affinity?.timeoutSeconds, realServers: realServers)
        }
        var servers = [server(entry.frontend.address, entry.frontend.port, internalServers)]
        for address in entry.externalIPs + entry.loadBalancerIPs {
            servers.append(server(address, entry.frontend.port, externalServers))
        }
        if let nodePort = entry.nodePort {
            servers += options.nodeAddresses.map { server($0, nodePort, externalServers) }
        }
        return servers
    }

    /// libipvs's ipvs_cmp_services: protocol number, then address, then port. The address difference is taken
    /// in 32 bits and read as a signed int, as ipvsadm does, so 192.168.0.1 sorts before 10.96.0.1.
    static func ipvsadmOrder(_ lhs: VirtualServer, _ rhs: VirtualServer) -> Bool {
        if lhs.serviceProtocol.number != rhs.serviceProtocol.number {
            return lhs.serviceProtocol.number < rhs.serviceProtocol.number
        }
        return ipvsadmOrder((lhs.address, lhs.port), (rhs.address, rhs.port))
    }

    static func ipvsadmOrder(_ lhs: (IPv4Address, UInt16), _ rhs: (IPv4Address, UInt16)) -> Bool {
        let difference = Int32(bitPattern: lhs.0.value &- rhs.0.value)
        return difference != 0 ? difference < 0 : lhs.1 < rhs.1
    }

    static func saveOption(_ serviceProtocol: ServiceProtocol) -> String {
        switch serviceProtocol {
        case .tcp: "-t"
        case .udp: "-u"
        case .sctp: "--sctp-service"
        }
    }

    static func padded(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }
}
