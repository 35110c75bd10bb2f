import KubeProxyRules
import Testing

@Suite("iptables-save view of the rules")
struct IPTablesSaveTests {
    /// Each pair: a rule as kube-proxy writes it, and as iptables-save 1.8.9 printed it after loading (recorded
    /// from a kernel; the live test compares whole tables).
    @Test("rules are printed as iptables-save prints them once loaded", arguments: [
        ("-A KUBE-FIREWALL -m comment --comment \"block incoming localnet connections\" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
         "-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"),
        ("-A KUBE-SERVICES -m comment --comment \"shop/legacy has no endpoints\" -m tcp -p tcp -d 10.96.10.50 --dport 80 -j REJECT",
         "-A KUBE-SERVICES -d 10.96.10.50/32 -p tcp -m comment --comment \"shop/legacy has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable"),
        ("-A KUBE-NODEPORTS -m comment --comment shop/frontend:http -m tcp -p tcp --dport 30080 -j KUBE-EXT-PY4JZH2ITZYEO4CN",
         "-A KUBE-NODEPORTS -p tcp -m comment --comment \"shop/frontend:http\" -m tcp --dport 30080 -j KUBE-EXT-PY4JZH2ITZYEO4CN"),
        ("-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000", "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0"),
        ("-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000", "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"),
        ("-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN",
         "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"),
        ("-A KUBE-SVC-N5W5PH5NLY2BP4HG -m comment --comment \"shop/cart -> 10.244.1.105:8080\" -m recent --name KUBE-SEP-BVTWZYOZRDCJAI34 --rcheck --seconds 600 --reap -j KUBE-SEP-BVTWZYOZRDCJAI34",
         "-A KUBE-SVC-N5W5PH5NLY2BP4HG -m comment --comment \"shop/cart -> 10.244.1.105:8080\" -m recent --rcheck --seconds 600 --reap --name KUBE-SEP-BVTWZYOZRDCJAI34 --mask 255.255.255.255 --rsource -j KUBE-SEP-BVTWZYOZRDCJAI34"),
        ("-A KUBE-SEP-3LGEVOSXT7C2MXF7 -m comment --comment shop/cart -m recent --name KUBE-SEP-3LGEVOSXT7C2MXF7 --set -m tcp -p tcp -j DNAT --to-destination 10.244.3.104:8080",
         "-A KUBE-SEP-3LGEVOSXT7C2MXF7 -p tcp -m comment --comment \"shop/cart\" -m recent --set --name KUBE-SEP-3LGEVOSXT7C2MXF7 --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.3.104:8080"),
        ("-A KUBE-SVC-A -m comment --comment \"a -> 10.244.1.118:9100\" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-B",
         "-A KUBE-SVC-A -m comment --comment \"a -> 10.244.1.118:9100\" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-B"),
        ("-A KUBE-SVC-A -m comment --comment \"a cluster IP\" -m tcp -p tcp -d 10.96.10.10 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ",
         "-A KUBE-SVC-A ! -s 10.244.0.0/16 -d 10.96.10.10/32 -p tcp -m comment --comment \"a cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ"),
    ])
    func rule(restore: String, saved: String) {
        let chain = restore.split(separator: " ")[1]
        #expect(IPTablesSave.render(restorePayload: "*nat\n:\(chain) - [0:0]\n\(restore)\nCOMMIT\n")
            == "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
            + ":\(chain) - [0:0]\n\(saved)\nCOMMIT\n")
    }
}
