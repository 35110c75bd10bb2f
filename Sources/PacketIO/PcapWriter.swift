import CPcap
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes pcap files through libpcap with a given link type and timestamp precision.
public final class PcapWriter {
    public let path: String
    public private(set) var packetsWritten = 0

    private let deadHandle: OpaquePointer
    private let dumper: OpaquePointer
    private let precision: TimestampPrecision
    private var closed = false

    public init(path: String, datalink: Int32, snapLength: Int32, precision: TimestampPrecision)
        throws(CaptureError)
    {
        let libpcapPrecision = precision == .nanoseconds ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO
        guard let dead = pcap_open_dead_with_tstamp_precision(datalink, snapLength, UInt32(libpcapPrecision)) else {
            throw CaptureError(path: path, message: "cannot create a capture of link type \(datalink)")
        }
        guard let dumper = pcap_dump_open(dead, path) else {
            let message = String(cString: pcap_geterr(dead))
            pcap_close(dead)
            throw CaptureError(path: path, message: message.isEmpty ? "cannot open for writing" : message)
        }
        self.path = path
        self.deadHandle = dead
        self.dumper = dumper
        self.precision = precision
    }

    deinit {
        if !closed { pcap_dump_close(dumper) }
        pcap_close(deadHandle)
    }

    /// Appends one frame; `timestamp` is nanoseconds since the Unix epoch.
    public func write(_ bytes: UnsafeRawBufferPointer, wireLength: Int, timestamp: Int64) {
        let seconds = timestamp / 1_000_000_000
        let fraction = timestamp % 1_000_000_000
        var header = pcap_pkthdr()
        header.ts.tv_sec = Int(seconds)
        header.ts.tv_usec = Int(precision == .nanoseconds ? fraction : fraction / 1000)
        header.caplen = UInt32(bytes.count)
        header.len = UInt32(max(wireLength, bytes.count))
        pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &header,
                  bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
        packetsWritten += 1
    }

    /// Flushes buffered frames; throws when the file system refused them (disk full, I/O error).
    public func flush() throws(CaptureError) {
        if pcap_dump_flush(dumper) != 0 || ferror(pcap_dump_file(dumper)) != 0 {
            throw CaptureError(path: path, packetNumber: nil,
                               message: "write failed after \(packetsWritten) packets: \(systemErrorText())")
        }
    }

    /// Flushes and closes the file.
    public func close() throws(CaptureError) {
        guard !closed else { return }
        defer {
            pcap_dump_close(dumper)
            closed = true
        }
        try flush()
    }
}

func systemErrorText() -> String { String(cString: strerror(errno)) }
