/// Why a frame could not be decoded far enough to be processed. Such frames are passed through
/// unchanged and counted by this reason.
public enum WireError: Int, Error, Equatable, Sendable, CaseIterable {
    case unsupportedLinkType
    case truncatedLinkHeader
    case truncatedIPv4Header
    case badIPv4Version
    case badIPv4HeaderLength
    case badIPv4TotalLength
    case truncatedTCPHeader
    case badTCPDataOffset
    case truncatedUDPHeader
    case badUDPLength
    case truncatedICMPHeader
    case malformedARP
    case notTCPOrUDP
    case truncatedSCTPHeader

    /// Stable snake_case name used in statistics output.
    public var name: String {
        switch self {
        case .unsupportedLinkType: "unsupported_link_type"
        case .truncatedLinkHeader: "truncated_link_header"
        case .truncatedIPv4Header: "truncated_ipv4_header"
        case .badIPv4Version: "bad_ipv4_version"
        case .badIPv4HeaderLength: "bad_ipv4_header_length"
        case .badIPv4TotalLength: "bad_ipv4_total_length"
        case .truncatedTCPHeader: "truncated_tcp_header"
        case .badTCPDataOffset: "bad_tcp_data_offset"
        case .truncatedUDPHeader: "truncated_udp_header"
        case .badUDPLength: "bad_udp_length"
        case .truncatedICMPHeader: "truncated_icmp_header"
        case .malformedARP: "malformed_arp"
        case .notTCPOrUDP: "not_tcp_or_udp"
        case .truncatedSCTPHeader: "truncated_sctp_header"
        }
    }
}
