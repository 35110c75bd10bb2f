import CPcap
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One captured frame as the reader hands it out. `bytes` is the reader's own memory (the caller's, from
/// `readRecords`): the caller may rewrite it in place, and it is valid until the reader's next read.
public struct CapturedFrame {
    /// Captured bytes (possibly fewer than `wireLength` when cut at the snap length).
    public let bytes: UnsafeMutableRawBufferPointer
    /// Length of the frame on the wire.
    public let wireLength: Int
    /// Capture time in nanoseconds since the Unix epoch.
    public let timestamp: Int64
}

/// Where a frame lies in a buffer of frames (`PcapReader.readRecords` fills one with records as the file has
/// them), with its lengths and time.
public struct FramePlace {
    /// The frame's first byte in the buffer.
    public var offset: Int
    /// Captured bytes.
    public var length: Int
    public var wireLength: Int
    /// Capture time in nanoseconds since the Unix epoch.
    public var timestamp: Int64
    /// The 16 bytes before the frame are its pcap record header as the file has it.
    public var hasRecordHeader: Bool

    public init(offset: Int, length: Int, wireLength: Int, timestamp: Int64, hasRecordHeader: Bool) {
        self.offset = offset
        self.length = length
        self.wireLength = wireLength
        self.timestamp = timestamp
        self.hasRecordHeader = hasRecordHeader
    }
}

/// Reads pcap and pcapng files with nanosecond timestamps: libpcap opens every capture and reads pcapng, pipes
/// and unusual records; a classic pcap file in this machine's byte order is read in blocks (`PcapBlockSource`),
/// giving the frames libpcap would give.
public final class PcapReader {
    public let path: String
    /// libpcap DLT value of the capture's link layer.
    public let datalink: Int32
    public let snapLength: Int32
    /// The precision the file itself records, so a writer can keep it.
    public let filePrecision: TimestampPrecision
    /// The size of the file in bytes; nil when it is not a regular file (a pipe).
    public let fileSize: Int64?
    /// Number of frames returned so far.
    // The per-record state is not checked for exclusive access at run time (a reader is used by one caller).
    @exclusivity(unchecked) public private(set) var packetsRead = 0

    private let handle: OpaquePointer
    @exclusivity(unchecked) private var blocks: PcapBlockSource?

    public convenience init(path: String) throws(CaptureError) {
        try self.init(path: path, readsBlocks: true)
    }

    /// `readsBlocks: false` leaves every record to libpcap (to compare the two).
    init(path: String, readsBlocks: Bool) throws(CaptureError) {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let handle = pcap_open_offline_with_tstamp_precision(
            path, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errorBuffer)
        else {
            let message = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CaptureError(path: path, message: Self.trimmed(message, path: path))
        }
        self.path = path
        self.handle = handle
        datalink = pcap_datalink(handle)
        snapLength = pcap_snapshot(handle)
        var status = stat()
        let isRegularFile = path != "-" && stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFREG
        fileSize = isRegularFile ? Int64(status.st_size) : nil
        // A pipe cannot be read twice, so one is taken as nanoseconds (nothing is lost).
        filePrecision = isRegularFile ? FilePrecisionProbe.precision(ofCaptureAt: path) : .nanoseconds
        blocks = readsBlocks ? PcapBlockSource(path: path, snapLength: snapLength) : nil
    }

    deinit {
        pcap_close(handle)
        blocks?.release()
    }

    /// Whether the file is read in blocks (libpcap still reads the records it treats specially).
    var readsBlocks: Bool { blocks != nil }

    /// How far into the file libpcap has read, in bytes; nil for a pipe.
    public var bytesRead: Int64? {
        if let blocks { return blocks.offset }
        guard let file = pcap_file(handle) else { return nil }
        let position = ftello(file)
        return position >= 0 ? Int64(position) : nil
    }

    /// The next frame, nil at the end of the file; throws with the packet number on a damaged record.
    public func next() throws(CaptureError) -> CapturedFrame? {
        guard blocks != nil else { return try nextFromLibpcap() }
        switch blocks!.next() {
        case .frame(let frame):
            packetsRead += 1
            return frame
        case .end:
            return nil
        case .unusual(let offset):
            guard let file = pcap_file(handle), fseeko(file, off_t(offset), SEEK_SET) == 0 else {
                throw CaptureError(path: path, packetNumber: packetsRead + 1, message: systemErrorText())
            }
            let frame = try nextFromLibpcap()
            blocks!.resume(at: Int64(ftello(file)))
            return frame
        }
    }

    /// Reads whole records straight into `buffer` from its byte `start`, in the file's layout (each frame after
    /// its 16-byte record header, timestamps in `filePrecision`), and gives each frame's place in `buffer`, in
    /// order, in `places` (at most as many records as it holds); returns the bytes the records fill and how many
    /// they are. Returns (0, 0) when the next record is to be read with `next()`: always for pcapng and pipes,
    /// and for libpcap's records.
    public func readRecords(into buffer: UnsafeMutableRawBufferPointer, from start: Int,
                            places: UnsafeMutableBufferPointer<FramePlace>) -> (byteCount: Int, frameCount: Int)
    {
        guard blocks != nil else { return (0, 0) }
        let read = blocks!.readRecords(into: buffer, from: start, places: places)
        packetsRead += read.frameCount
        return read
    }

    private func nextFromLibpcap() throws(CaptureError) -> CapturedFrame? {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        switch pcap_next_ex(handle, &header, &data) {
        case 1:
            guard let header, let data else { return nil }
            packetsRead += 1
            let stamp = header.pointee.ts
            guard (0...Self.latestSecond).contains(Int64(stamp.tv_sec)) else {
                throw CaptureError(path: path, packetNumber: packetsRead,
                                   message: "timestamp \(stamp.tv_sec) s is out of range")
            }
            return CapturedFrame(
                // libpcap's own read buffer, refilled by every read.
                bytes: UnsafeMutableRawBufferPointer(start: UnsafeMutablePointer(mutating: data),
                                                     count: Int(header.pointee.caplen)),
                wireLength: Int(header.pointee.len),
                timestamp: Int64(stamp.tv_sec) * 1_000_000_000 + Int64(stamp.tv_usec))
        case PCAP_ERROR_BREAK:
            return nil
        default:
            throw CaptureError(path: path, packetNumber: packetsRead + 1,
                               message: Self.trimmed(String(cString: pcap_geterr(handle)), path: path))
        }
    }

    /// Latest timestamp accepted, in seconds (2^32, year 2106: past any capture, and far enough from
    /// Int64 nanoseconds that adding any conntrack timeout cannot overflow).
    static let latestSecond: Int64 = 1 << 32

    /// libpcap messages sometimes repeat the path; the error already names it.
    private static func trimmed(_ message: String, path: String) -> String {
        let prefix = path + ": "
        return message.hasPrefix(prefix) ? String(message.dropFirst(prefix.count)) : message
    }
}

/// Finds the timestamp precision a capture file (a regular file) records: the pcap magic number, or for pcapng
/// the `if_tsresol` option of the first interface description block (microseconds when absent).
enum FilePrecisionProbe {
    static func precision(ofCaptureAt path: String) -> TimestampPrecision {
        guard let file = fopen(path, "rb") else { return .microseconds }
        defer { fclose(file) }
        var head = [UInt8](repeating: 0, count: 512)
        let count = fread(&head, 1, head.count, file)
        guard count >= 4 else { return .microseconds }
        let magicBig = UInt32(head[0]) << 24 | UInt32(head[1]) << 16 | UInt32(head[2]) << 8 | UInt32(head[3])
        switch magicBig {
        case 0xA1B2_3C4D, 0x4D3C_B2A1: return .nanoseconds
        case 0x0A0D_0D0A: return pcapngPrecision(Array(head[0..<count]))
        default: return .microseconds
        }
    }

    /// Walks the section header block to the first interface description block and reads if_tsresol.
    private static func pcapngPrecision(_ bytes: [UInt8]) -> TimestampPrecision {
        guard bytes.count >= 12 else { return .microseconds }
        let littleEndian = bytes[8] == 0x4D
        func u32(_ at: Int) -> UInt32? {
            guard at + 4 <= bytes.count else { return nil }
            let value = (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(bytes[at + $1]) }
            return littleEndian ? value.byteSwapped : value
        }
        func u16(_ at: Int) -> UInt16? {
            guard at + 2 <= bytes.count else { return nil }
            let value = UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1])
            return littleEndian ? value.byteSwapped : value
        }
        guard let sectionLength = u32(4), let idbType = u32(Int(sectionLength)), idbType == 1,
              let idbLength = u32(Int(sectionLength) + 4) else { return .microseconds }
        let idbStart = Int(sectionLength)
        var option = idbStart + 16
        while option + 4 <= idbStart + Int(idbLength) - 4, let code = u16(option), let length = u16(option + 2) {
            if code == 0 { break }
            if code == 9, length >= 1, option + 4 < bytes.count {
                let resolution = bytes[option + 4]
                return resolution & 0x80 == 0 && resolution >= 9 ? .nanoseconds : .microseconds
            }
            option += 4 + (Int(length) + 3) / 4 * 4
        }
        return .microseconds
    }
}
