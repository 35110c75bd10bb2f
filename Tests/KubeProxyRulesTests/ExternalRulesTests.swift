import Cluster
import KubeProxyRules
import Testing

/// The Services of kube-proxy's TestOverallIPTablesRules (pkg/proxy/iptables/proxier_test.go), node test-node.
let overallServices = """
    kind: Service
    metadata: {name: svc1, namespace: ns1}
    spec: {clusterIP: 172.30.0.41, ports: [{name: p80, port: 80, protocol: TCP}]}
    ---
    kind: EndpointSlice
    metadata: {name: svc1-1, namespace: ns1, labels: {kubernetes.io/service-name: svc1}}
    ports: [{name: p80, port: 80, protocol: TCP}]
    endpoints: [{addresses: [10.180.0.1]}]
    ---
    kind: Service
    metadata: {name: svc2, namespace: ns2}
    spec: {type: LoadBalancer, clusterIP: 172.30.0.42, externalIPs: [192.168.99.22], externalTrafficPolicy: Local,
           healthCheckNodePort: 30000, ports: [{name: p80, port: 80, protocol: TCP, nodePort: 3001}]}
    status: {loadBalancer: {ingress: [{ip: 1.2.3.4}]}}
    ---
    kind: EndpointSlice
    metadata: {name: svc2-1, namespace: ns2, labels: {kubernetes.io/service-name: svc2}}
    ports: [{name: p80, port: 80, protocol: TCP}]
    endpoints: [{addresses: [10.180.0.2]}]
    ---
    kind: Service
    metadata: {name: svc3, namespace: ns3}
    spec: {type: NodePort, clusterIP: 172.30.0.43, ports: [{name: p80, port: 80, protocol: TCP, nodePort: 3003}]}
    ---
    kind: EndpointSlice
    metadata: {name: svc3-1, namespace: ns3, labels: {kubernetes.io/service-name: svc3}}
    ports: [{name: p80, port: 80, protocol: TCP}]
    endpoints: [{addresses: [10.180.0.3]}]
    ---
    kind: Service
    metadata: {name: svc4, namespace: ns4}
    spec: {type: NodePort, clusterIP: 172.30.0.44, externalIPs: [192.168.99.33],
           ports: [{name: p80, port: 80, protocol: TCP}]}
    ---
    kind: EndpointSlice
    metadata: {name: svc4-1, namespace: ns4, labels: {kubernetes.io/service-name: svc4}}
    ports: [{name: p80, port: 80, protocol: TCP}]
    endpoints: [{addresses: [10.180.0.4]}, {addresses: [10.180.0.5], nodeName: test-node}]
    ---
    kind: Service
    metadata: {name: svc5, namespace: ns5}
    spec: {type: LoadBalancer, clusterIP: 172.30.0.45, healthCheckNodePort: 30000,
           loadBalancerSourceRanges: [" 203.0.113.0/25"], sessionAffinity: ClientIP,
           ports: [{name: p80, port: 80, protocol: TCP, nodePort: 3002}]}
    status: {loadBalancer: {ingress: [{ip: 5.6.7.8}]}}
    ---
    kind: EndpointSlice
    metadata: {name: svc5-1, namespace: ns5, labels: {kubernetes.io/service-name: svc5}}
    ports: [{name: p80, port: 80, protocol: TCP}]
    endpoints: [{addresses: [10.180.0.3]}]
    ---
    kind: Service
    metadata: {name: svc6, namespace: ns6}
    spec: {clusterIP: 172.30.0.46, ports: [{name: p80, port: 80, protocol: TCP}]}
    """

/// TestOverallIPTablesRules' expected output in the 1.29 form (without the nfacct rules of 1.30 and 1.31), as
/// kube-proxy's tests compare it: normalised by `sortIPTablesRules`.
private let overallExpected = """
    *filter
    :KUBE-NODEPORTS - [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-EXTERNAL-SERVICES - [0:0]
    :KUBE-FIREWALL - [0:0]
    :KUBE-FORWARD - [0:0]
    :KUBE-PROXY-FIREWALL - [0:0]
    -A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
    -A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
    -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
    -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
    -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
    -A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
    -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    -A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
    COMMIT
    *nat
    :KUBE-NODEPORTS - [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
    :KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
    :KUBE-EXT-NUKIZ6OKUXPJNT4C - [0:0]
    :KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
    :KUBE-FW-NUKIZ6OKUXPJNT4C - [0:0]
    :KUBE-MARK-MASQ - [0:0]
    :KUBE-POSTROUTING - [0:0]
    :KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
    :KUBE-SEP-I77PXRDZVX7PMWMN - [0:0]
    :KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
    :KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
    :KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
    :KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
    :KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
    :KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
    :KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]
    :KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
    :KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
    -A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
    -A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
    -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
    -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
    -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
    -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
    -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
    -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
    -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
    -A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
    -A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
    -A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
    -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
    -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
    -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
    -A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
    -A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
    -A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
    -A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
    -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
    -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
    -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
    -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
    -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
    -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
    -A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
    -A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
    -A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
    -A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
    -A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
    -A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
    -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
    -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
    -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
    -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
    -A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
    -A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
    -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
    -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
    -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
    -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
    -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
    -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
    -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
    COMMIT

    """

/// kube-proxy's test normalisation (`sortIPTablesRules`): per table, KUBE-NODEPORTS and KUBE-SERVICES first,
/// then the other chains by name; rules grouped by chain; in those two chains, rules stable-sorted by service
/// (the comment up to the first space or colon), the nodeports jump kept last.
private func sortedLikeKubeProxyTests(_ payload: String) -> String {
    var output: [String] = []
    var chains: [String] = []
    var rules: [String: [String]] = [:]
    func chainKey(_ chain: String) -> (Int, String) {
        chain == "KUBE-NODEPORTS" ? (0, "") : chain == "KUBE-SERVICES" ? (1, "") : (2, chain)
    }
    func service(_ rule: String) -> String {
        guard let comment = rule.range(of: "--comment ") else { return "" }
        let text = rule[comment.upperBound...].drop { $0 == "\"" }
        return String(text.prefix { $0 != " " && $0 != ":" })
    }
    for line in payload.split(separator: "\n").map(String.init) {
        if line.hasPrefix("*") {
            output.append(line)
        } else if line.hasPrefix(":") {
            chains.append(String(line.dropFirst().prefix { $0 != " " }))
        } else if line.hasPrefix("-A ") {
            rules[String(line.dropFirst(3).prefix { $0 != " " }), default: []].append(line)
        } else if line == "COMMIT" {
            let ordered = chains.sorted { chainKey($0) < chainKey($1) }
            output += ordered.map { ":\($0) - [0:0]" }
            for chain in ordered {
                var chainRules = rules[chain] ?? []
                if chain == "KUBE-NODEPORTS" || chain == "KUBE-SERVICES" {
                    let last = chainRules.filter { $0.contains("this must be the last rule") }
                    chainRules = chainRules.filter { !last.contains($0) }.enumerated()
                        .sorted { (service($0.element), $0.offset) < (service($1.element), $1.offset) }
                        .map(\.element) + last
                }
                output += chainRules
            }
            output.append("COMMIT")
            chains = []
            rules = [:]
        }
    }
    return output.joined(separator: "\n") + "\n"
}

@Suite("kube-proxy iptables rules for node ports, load balancers, external IPs and traffic policies")
struct ExternalRulesTests {
    @Test("kube-proxy's TestOverallIPTablesRules: every external shape, byte for byte after its normalisation")
    func overallRules() throws {
        var options = KubeProxyOptions(clusterCIDR: "10.0.0.0/8", nodeName: "test-node")
        options.randomFully = false
        let payload = IPTablesRules.render(try table(overallServices), options: options)
            .replacingOccurrences(of: "0x00004000", with: "0x4000")  // the tests' masquerade mark
        let actual = sortedLikeKubeProxyTests(payload).split(separator: "\n", omittingEmptySubsequences: false)
        let expected = overallExpected.split(separator: "\n", omittingEmptySubsequences: false)
        for (index, line) in expected.enumerated() {
            #expect(index < actual.count && actual[index] == line, "line \(index + 1)")
        }
        #expect(actual.count == expected.count)
    }

    @Test("internalTrafficPolicy Local: the ClusterIP goes to KUBE-SVL with only this node's endpoints; none here is a DROP")
    func internalLocal() throws {
        let service = """
            kind: Service
            metadata: {name: svc1, namespace: ns1}
            spec: {clusterIP: 172.30.0.41, internalTrafficPolicy: Local, ports: [{name: p80, port: 80, protocol: TCP}]}
            ---
            kind: EndpointSlice
            metadata: {name: svc1-1, namespace: ns1, labels: {kubernetes.io/service-name: svc1}}
            ports: [{name: p80, port: 80, protocol: TCP}]
            endpoints: [{addresses: [10.180.0.1], nodeName: node-1}, {addresses: [10.180.2.1], nodeName: node-2}]
            """
        let rules = IPTablesRules.render(try table(service),
                                         options: KubeProxyOptions(clusterCIDR: "10.0.0.0/8", nodeName: "node-1"))
        let nat = rules.split(separator: "*nat\n")[1]
        #expect(nat.contains("""
            :KUBE-SVL-XPGD46QRK7WJZT7O - [0:0]
            :KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
            -A KUBE-POSTROUTING
            """) && !nat.contains("KUBE-SVC-") && !nat.contains("10.180.2.1"))
        #expect(nat.contains("""
            -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVL-XPGD46QRK7WJZT7O
            -A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
            -A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
            """))
        let elsewhere = IPTablesRules.render(try table(service), options: KubeProxyOptions(nodeName: "node-3"))
        #expect(elsewhere.contains("""
            -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j DROP
            """))
        #expect(!elsewhere.split(separator: "*nat\n")[1].contains("KUBE-SVL-"))
    }
}
