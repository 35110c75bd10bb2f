import CPcap
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes pcap files with a given link type and timestamp precision: libpcap writes the file header; records,
/// in the layout `pcap_dump` gives them, are gathered in a buffer of a megabyte and written a block at a time.
public final class PcapWriter {
    public let path: String
    // The per-record state is not checked for exclusive access at run time (a writer is used by one caller).
    @exclusivity(unchecked) public private(set) var packetsWritten = 0

    private let deadHandle: OpaquePointer
    private let dumper: OpaquePointer
    /// The precision of the timestamps in the file's record headers.
    public let precision: TimestampPrecision
    private var closed = false
    private let buffer: UnsafeMutableRawBufferPointer
    @exclusivity(unchecked) private var buffered = 0
    static let bufferLength = 1 << 20

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
        buffer = .allocate(byteCount: Self.bufferLength, alignment: 16)
    }

    deinit {
        if !closed {
            writeBuffered()
            pcap_dump_close(dumper)
        }
        pcap_close(deadHandle)
        buffer.deallocate()
    }

    /// Appends one frame; `timestamp` is nanoseconds since the Unix epoch.
    public func write(_ bytes: UnsafeRawBufferPointer, wireLength: Int, timestamp: Int64) {
        let seconds = timestamp / 1_000_000_000
        let fraction = timestamp % 1_000_000_000
        // pcap_dump's record header: 32-bit seconds, fraction, captured and wire length, in host byte order.
        let header = (UInt32(truncatingIfNeeded: seconds),
                      UInt32(truncatingIfNeeded: precision == .nanoseconds ? fraction : fraction / 1000),
                      UInt32(bytes.count), UInt32(max(wireLength, bytes.count)))
        if buffered + PcapFormat.recordHeaderLength + bytes.count > buffer.count { writeBuffered() }
        withUnsafeBytes(of: header) { append($0) }
        if bytes.count > buffer.count - buffered {  // larger than the buffer: written as it is
            writeBuffered()
            fwrite(bytes.baseAddress, 1, bytes.count, pcap_dump_file(dumper))
        } else {
            append(bytes)
        }
        packetsWritten += 1
    }

    /// Appends `count` whole records, each a 16-byte header in `pcap_dump`'s layout (timestamps in `precision`)
    /// and its frame, as a reader in blocks leaves them.
    public func writeRecords(_ records: UnsafeRawBufferPointer, count: Int) {
        if records.count > buffer.count - buffered || records.count >= Self.directWriteLength { writeBuffered() }
        if records.count >= Self.directWriteLength {  // written from the caller's memory, not copied first
            fwrite(records.baseAddress, 1, records.count, pcap_dump_file(dumper))
        } else {
            append(records)
        }
        packetsWritten += count
    }

    /// Runs of records this long are written as they are rather than gathered.
    static let directWriteLength = 65536

    private func append(_ bytes: UnsafeRawBufferPointer) {
        UnsafeMutableRawBufferPointer(rebasing: buffer[buffered..<buffered + bytes.count]).copyMemory(from: bytes)
        buffered += bytes.count
    }

    /// Hands the gathered records to the file's stream.
    private func writeBuffered() {
        guard buffered > 0 else { return }
        fwrite(buffer.baseAddress, 1, buffered, pcap_dump_file(dumper))
        buffered = 0
    }

    /// Flushes buffered frames; throws when the file system refused them (disk full, I/O error).
    public func flush() throws(CaptureError) {
        writeBuffered()
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
