import Cluster
import KubeProxyRules
import Testing

func table(_ yaml: String) throws -> ServiceTable {
    var manifests = ClusterManifests()
    try ManifestLoader.load(yaml: yaml, name: "test.yaml", into: &manifests)
    return try ServiceTableBuilder.build(manifests)
}

/// ns1/svc1 (unnamed port 80) with three endpoints, as in kube-proxy's own proxier tests.
let threeEndpoints = """
    kind: Service
    metadata: {name: svc1, namespace: ns1}
    spec: {clusterIP: 172.30.1.1, ports: [{port: 80, protocol: TCP}]}
    ---
    kind: Endpoints
    metadata: {name: svc1, namespace: ns1}
    subsets: [{addresses: [{ip: 10.0.1.2}, {ip: 10.0.1.1}, {ip: 10.0.1.3}], ports: [{port: 80}]}]
    """

@Suite("kube-proxy iptables rules")
struct IPTablesRulesTests {
    @Test("chain names hash the service port name, protocol and endpoint as kube-proxy does", arguments: [
        ("ns1", "svc1", "p80", nil, "KUBE-SVC-XPGD46QRK7WJZT7O", "10.180.0.1", "KUBE-SEP-SXIVWICOYRO3J4NJ"),
        ("ns1", "svc1", nil, nil, "KUBE-SVC-AQI2S6QIMU7PVVRP", "10.0.1.1", "KUBE-SEP-3JOIVZTXZZRGORX4"),
        ("ns5", "svc5", "p80", nil, "KUBE-SVC-NUKIZ6OKUXPJNT4C", "10.180.0.3", "KUBE-SEP-I77PXRDZVX7PMWMN"),
        ("kube-system", "kube-dns", "dns", "UDP", "KUBE-SVC-TCOU7JCQXEZGVUNU", nil, nil),
    ] as [(String, String, String?, String?, String, String?, String?)])
    func chainNames(namespace: String, name: String, port: String?, proto: String?, serviceChain: String,
                    endpoint: String?, endpointChain: String?) throws
    {
        let portName = port.map { "name: \($0), " } ?? ""
        let compiled = try table("""
            kind: Service
            metadata: {name: \(name), namespace: \(namespace)}
            spec: {clusterIP: 172.30.0.41, ports: [{\(portName)port: 80, protocol: \(proto ?? "TCP")}]}
            ---
            kind: Endpoints
            metadata: {name: \(name), namespace: \(namespace)}
            subsets: [{addresses: [{ip: \(endpoint ?? "10.1.1.1")}], ports: [{\(portName)port: 80, protocol: \(proto ?? "TCP")}]}]
            """)
        let entry = compiled.entries[0]
        #expect(ChainNames.service(entry) == serviceChain)
        if let endpointChain { #expect(ChainNames.endpoint(entry, entry.backends[0]) == endpointChain) }
    }

    @Test("a ClusterIP Service with three endpoints: the rules of kube-proxy's TestInternalTrafficPolicyE2E")
    func clusterIP() throws {
        var options = KubeProxyOptions(clusterCIDR: "10.0.0.0/8")
        options.randomFully = false
        let rules = IPTablesRules.render(try table(threeEndpoints), options: options)
        let nat = rules.split(separator: "*nat\n")[1].split(separator: "\n").map(String.init)
        let expected = """
            :KUBE-SERVICES - [0:0]
            :KUBE-NODEPORTS - [0:0]
            :KUBE-POSTROUTING - [0:0]
            :KUBE-MARK-MASQ - [0:0]
            :KUBE-SVC-AQI2S6QIMU7PVVRP - [0:0]
            :KUBE-SEP-3JOIVZTXZZRGORX4 - [0:0]
            :KUBE-SEP-IO5XOSKPAXIFQXAJ - [0:0]
            :KUBE-SEP-XGJFVO3L2O5SRFNT - [0:0]
            -A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
            -A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
            -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
            -A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
            -A KUBE-SERVICES -m comment --comment "ns1/svc1 cluster IP" -m tcp -p tcp -d 172.30.1.1 --dport 80 -j KUBE-SVC-AQI2S6QIMU7PVVRP
            -A KUBE-SVC-AQI2S6QIMU7PVVRP -m comment --comment "ns1/svc1 cluster IP" -m tcp -p tcp -d 172.30.1.1 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
            -A KUBE-SVC-AQI2S6QIMU7PVVRP -m comment --comment "ns1/svc1 -> 10.0.1.1:80" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-3JOIVZTXZZRGORX4
            -A KUBE-SVC-AQI2S6QIMU7PVVRP -m comment --comment "ns1/svc1 -> 10.0.1.2:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-IO5XOSKPAXIFQXAJ
            -A KUBE-SVC-AQI2S6QIMU7PVVRP -m comment --comment "ns1/svc1 -> 10.0.1.3:80" -j KUBE-SEP-XGJFVO3L2O5SRFNT
            -A KUBE-SEP-3JOIVZTXZZRGORX4 -m comment --comment ns1/svc1 -s 10.0.1.1 -j KUBE-MARK-MASQ
            -A KUBE-SEP-3JOIVZTXZZRGORX4 -m comment --comment ns1/svc1 -m tcp -p tcp -j DNAT --to-destination 10.0.1.1:80
            -A KUBE-SEP-IO5XOSKPAXIFQXAJ -m comment --comment ns1/svc1 -s 10.0.1.2 -j KUBE-MARK-MASQ
            -A KUBE-SEP-IO5XOSKPAXIFQXAJ -m comment --comment ns1/svc1 -m tcp -p tcp -j DNAT --to-destination 10.0.1.2:80
            -A KUBE-SEP-XGJFVO3L2O5SRFNT -m comment --comment ns1/svc1 -s 10.0.1.3 -j KUBE-MARK-MASQ
            -A KUBE-SEP-XGJFVO3L2O5SRFNT -m comment --comment ns1/svc1 -m tcp -p tcp -j DNAT --to-destination 10.0.1.3:80
            -A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
            COMMIT
            """
        #expect(nat == expected.split(separator: "\n").map(String.init))
    }

    @Test("no cluster CIDR: no masquerade rule for ClusterIP traffic; no endpoints: a filter REJECT")
    func noMasqueradeAndReject() throws {
        let rules = IPTablesRules.render(try table(threeEndpoints + """

            ---
            kind: Service
            metadata: {name: svc6, namespace: ns6}
            spec: {clusterIP: 172.30.0.46, ports: [{name: p80, port: 80}]}
            """))
        #expect(!rules.split(separator: "\n").contains { $0.hasPrefix("-A KUBE-SVC-") && $0.hasSuffix("KUBE-MARK-MASQ") })
        #expect(rules.contains("-A KUBE-SERVICES -m comment --comment \"ns6/svc6:p80 has no endpoints\" -m tcp -p tcp "
            + "-d 172.30.0.46 --dport 80 -j REJECT\n"))
        #expect(rules.contains("-j MASQUERADE --random-fully\n"))
    }

    @Test("ClientIP affinity: recent checks before the probabilities, --set before the DNAT")
    func affinity() throws {
        let pinned = threeEndpoints.replacingOccurrences(
            of: "ports: [{port: 80, protocol: TCP}]}",
            with: "ports: [{port: 80, protocol: TCP}], sessionAffinity: ClientIP}")
        let lines = IPTablesRules.render(try table(pinned)).split(separator: "\n").map(String.init)
        let serviceRules = lines.filter { $0.hasPrefix("-A KUBE-SVC-AQI2S6QIMU7PVVRP") }
        #expect(serviceRules.count == 6)
        #expect(serviceRules[0] == "-A KUBE-SVC-AQI2S6QIMU7PVVRP -m comment --comment \"ns1/svc1 -> 10.0.1.1:80\" "
            + "-m recent --name KUBE-SEP-3JOIVZTXZZRGORX4 --rcheck --seconds 10800 --reap -j KUBE-SEP-3JOIVZTXZZRGORX4")
        #expect(serviceRules[3].contains("--probability 0.3333333333"))
        #expect(lines.contains("-A KUBE-SEP-3JOIVZTXZZRGORX4 -m comment --comment ns1/svc1 -m recent --name "
            + "KUBE-SEP-3JOIVZTXZZRGORX4 --set -m tcp -p tcp -j DNAT --to-destination 10.0.1.1:80"))
    }
}
