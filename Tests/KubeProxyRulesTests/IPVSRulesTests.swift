import Cluster
import KubeProxyRules
import PacketWire
import Testing

@Suite("kube-proxy IPVS virtual servers")
struct IPVSRulesTests {
    private func options(node: String = "192.168.0.2") throws -> KubeProxyOptions {
        var options = KubeProxyOptions(clusterCIDR: "10.0.0.0/8", nodeName: "test-hostname")
        options.nodeAddresses = [try #require(IPv4Address(node))]
        return options
    }

    /// A real server line: ipvsadm's "  -> %-28s %-7s %-6d %-10u %-10u", padded to the end (as on a real node).
    private func destination(_ address: String) -> String {
        "  -> " + address.padding(toLength: 28, withPad: " ", startingAt: 0) + " Masq    1      0          0         "
    }

    @Test("ipvsadm -Ln for kube-proxy's overall test Services: a virtual server per ClusterIP, external, load balancer IP and node port, in ipvsadm's wrapped address order")
    func overallList() throws {
        let listing = IPVSRules.render(try table(overallServices), options: try options())
        let expected = [
            "IP Virtual Server version 1.2.1 (size=4096)",
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
            // 172.30/192.168 sort before 1.2.3.4 and 5.6.7.8: ipvsadm compares addresses as a wrapped 32-bit
            // difference, and these differ by more than 2^31.
            "TCP  172.30.0.41:80 rr", destination("10.180.0.1:80"),
            "TCP  172.30.0.42:80 rr", destination("10.180.0.2:80"),
            "TCP  172.30.0.43:80 rr", destination("10.180.0.3:80"),
            "TCP  172.30.0.44:80 rr", destination("10.180.0.4:80"), destination("10.180.0.5:80"),
            "TCP  172.30.0.45:80 rr persistent 10800", destination("10.180.0.3:80"),
            "TCP  172.30.0.46:80 rr",
            // svc2's external policy is Local and it has no endpoint here: IPVS mode falls back to the cluster's.
            "TCP  192.168.0.2:3001 rr", destination("10.180.0.2:80"),
            "TCP  192.168.0.2:3002 rr persistent 10800", destination("10.180.0.3:80"),
            "TCP  192.168.0.2:3003 rr", destination("10.180.0.3:80"),
            "TCP  192.168.99.22:80 rr", destination("10.180.0.2:80"),
            "TCP  192.168.99.33:80 rr", destination("10.180.0.4:80"), destination("10.180.0.5:80"),
            "TCP  1.2.3.4:80 rr", destination("10.180.0.2:80"),
            "TCP  5.6.7.8:80 rr persistent 10800", destination("10.180.0.3:80"),
        ]
        #expect(listing == expected.joined(separator: "\n") + "\n")
    }

    @Test("ipvsadm -Sn: the same virtual servers as ipvsadm-restore input")
    func overallSave() throws {
        let saved = IPVSRules.render(try table(overallServices), options: try options(), format: .save)
        let lines = saved.split(separator: "\n")
        #expect(lines.first == "-A -t 172.30.0.41:80 -s rr")
        #expect(lines.contains("-A -t 5.6.7.8:80 -s rr -p 10800"))
        #expect(lines.contains("-a -t 172.30.0.44:80 -r 10.180.0.5:80 -m -w 1"))
        #expect(lines.filter { $0.hasPrefix("-A ") }.count == 13)
        #expect(lines.filter { $0.hasPrefix("-a ") }.count == 14)
    }

    @Test("protocols sort TCP, UDP, SCTP; a Local policy keeps this node's endpoints; destinations sort by address")
    func protocolsAndLocal() throws {
        let compiled = try table("""
            kind: Service
            metadata: {name: dns, namespace: kube-system}
            spec: {clusterIP: 10.96.0.10, internalTrafficPolicy: Local,
                   ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP},
                           {name: sig, port: 9000, protocol: SCTP}]}
            ---
            kind: EndpointSlice
            metadata: {name: dns-1, namespace: kube-system, labels: {kubernetes.io/service-name: dns}}
            ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP},
                    {name: sig, port: 9000, protocol: SCTP}]
            endpoints: [{addresses: [10.244.2.9], nodeName: other}, {addresses: [10.244.1.20], nodeName: test-hostname},
                        {addresses: [10.244.1.3], nodeName: test-hostname}]
            """)
        let services = IPVSRules.render(compiled, options: try options()).split(separator: "\n").dropFirst(3)
        #expect(services.map(String.init) == [
            "TCP  10.96.0.10:53 rr",
            destination("10.244.1.3:53"),
            destination("10.244.1.20:53"),
            "UDP  10.96.0.10:53 rr",
            destination("10.244.1.3:53"),
            destination("10.244.1.20:53"),
            "SCTP 10.96.0.10:9000 rr",
            destination("10.244.1.3:9000"),
            destination("10.244.1.20:9000"),
        ])
    }
}
