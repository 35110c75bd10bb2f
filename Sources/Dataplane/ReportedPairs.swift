import PacketWire

/// The TCP backend-and-client pairs one pass over a capture has reported as sightings in the current period of
/// capture time (`ObservedBackends.period`), as far as a fixed table holds them (a pair takes the slot of an older
/// one whose key hashes alike): enough to know the connections in flight. A pair's later segments in the period
/// in which it was reported change no observation (`ObservedBackends.record`), so a pass recognises them from a
/// few fields, before decoding them or looking them up.
public struct ReportedPairs {
    @usableFromInline struct Slot: Equatable {
        @usableFromInline var backend: UInt64
        @usableFromInline var client: UInt64
        @usableFromInline var period: Int64

        @usableFromInline init(backend: UInt64, client: UInt64, period: Int64) {
            self.backend = backend
            self.client = client
            self.period = period
        }
    }

    @usableFromInline static let slotBits = 14
    @usableFromInline var slots = [Slot](repeating: Slot(backend: 0, client: 0, period: 0), count: 1 << slotBits)

    public init() {}

    /// Whether the IPv4 packet at `networkOffset` in `frame` is a TCP segment, other than a SYN/ACK, of a pair in
    /// the table reported in `period`, by fields read where a valid packet has them, without validating it (any
    /// packet so read, valid or not, changes no observation). (Inlinable: a pass asks it of most frames from a
    /// backend.)
    @inlinable @inline(__always)
    func repeats(_ frame: UnsafeMutableRawBufferPointer, networkOffset offset: Int, period: Int64) -> Bool {
        guard frame.count >= offset + 20, frame.u8(offset + 9) == IPProtocol.tcp else { return false }
        let tcpOffset = IPv4Packet.unvalidatedPayloadOffset(in: frame, offset: offset)
        guard frame.count >= tcpOffset + 14,
              frame.u8(tcpOffset + 13) & (TCPFlags.syn.rawValue | TCPFlags.ack.rawValue)
              != TCPFlags.syn.rawValue | TCPFlags.ack.rawValue
        else { return false }
        let backend = Self.key(frame.u32(offset + 12), frame.u16(tcpOffset))
        let client = Self.key(frame.u32(offset + 16), frame.u16(tcpOffset + 2))
        return slots[Self.slot(backend: backend, client: client)]
            == Slot(backend: backend, client: client, period: period)
    }

    /// Adds the pair of a TCP sighting in `period`.
    mutating func insert(backend: TransportEndpoint, client: TransportEndpoint, period: Int64) {
        let backend = Self.key(backend.address.value, backend.port)
        let client = Self.key(client.address.value, client.port)
        slots[Self.slot(backend: backend, client: client)] = Slot(backend: backend, client: client, period: period)
    }

    /// An address and port, with a bit above them that no empty slot has.
    @usableFromInline static func key(_ address: UInt32, _ port: UInt16) -> UInt64 {
        1 << 48 | UInt64(address) << 16 | UInt64(port)
    }

    @usableFromInline static func slot(backend: UInt64, client: UInt64) -> Int {
        let mixed = ((client &* 0x9E37_79B9_7F4A_7C15) ^ backend) &* 0xBF58_476D_1CE4_E5B9
        return Int(truncatingIfNeeded: mixed >> (64 - slotBits))
    }
}
