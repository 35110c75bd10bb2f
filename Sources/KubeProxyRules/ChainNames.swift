import Cluster
import Crypto

/// kube-proxy's chain names: a prefix and the first 16 characters of the standard base32 encoding of the
/// SHA-256 of `servicePortName + protocol` (KUBE-SVC-, KUBE-SVL-, KUBE-EXT-, KUBE-FW-) or
/// `servicePortName + protocol + "ip:port"` (KUBE-SEP-), protocol in lower case.
public enum ChainNames {
    public static func service(_ entry: ServicePortEntry) -> String { "KUBE-SVC-" + portHash(entry) }
    public static func local(_ entry: ServicePortEntry) -> String { "KUBE-SVL-" + portHash(entry) }
    public static func external(_ entry: ServicePortEntry) -> String { "KUBE-EXT-" + portHash(entry) }
    public static func firewall(_ entry: ServicePortEntry) -> String { "KUBE-FW-" + portHash(entry) }

    private static func portHash(_ entry: ServicePortEntry) -> String {
        hashPrefix("\(entry.name)\(entry.frontend.serviceProtocol.lowercaseName)")
    }

    public static func endpoint(_ entry: ServicePortEntry, _ backend: Backend) -> String {
        "KUBE-SEP-" + hashPrefix("\(entry.name)\(entry.frontend.serviceProtocol.lowercaseName)\(backend)")
    }

    /// The first `characters` (at most 16) of the standard base32 encoding of SHA-256(text), 5 bits a character:
    /// 16 for the iptables chains, 8 for the nftables ones.
    static func hashPrefix(_ text: String, characters: Int = 16) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        let digest = Array(SHA256.hash(data: Array(text.utf8)).prefix(10))
        let bits = digest.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
        return String((0..<characters).map { alphabet[Int(bits >> (75 - 5 * UInt128($0)) & 0x1F)] })
    }
}
