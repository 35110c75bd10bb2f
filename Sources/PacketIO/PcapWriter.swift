import CPcap
import Dispatch
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes pcap files with a given link type and timestamp precision: libpcap writes the file header; records,
/// in the layout `pcap_dump` gives them, are gathered in a buffer of a megabyte and written a block at a time.
///
/// An existing file is emptied on a thread of its own (`BackgroundTruncation`): emptying waits for the writeback
/// of what the file held (tens of milliseconds after a run that has just written it). Meanwhile the records are
/// kept in memory, up to `pendingLimit` bytes, and written, after libpcap's header, once the file is empty.
///
/// Given the size the file is expected to reach, the writer reserves it before the first write (`fallocate`,
/// keeping the file's size): the file system then allocates the space at once rather than page by page as the
/// writes come (on ext4 a third less kernel time for a new file of 100 MB), and the space left unused is given
/// back when the file is closed.
public final class PcapWriter {
    public let path: String
    // The per-record state is not checked for exclusive access at run time (a writer is used by one caller).
    @exclusivity(unchecked) public private(set) var packetsWritten = 0

    private let deadHandle: OpaquePointer
    /// The file, once empty; `dumper` then writes to it through `stream`.
    private let descriptor: Int32
    @exclusivity(unchecked) private var stream: UnsafeMutablePointer<FILE>?
    @exclusivity(unchecked) private var dumper: OpaquePointer?
    @exclusivity(unchecked) private var truncation: BackgroundTruncation?
    /// Records written while the file is being emptied, in order: `pendingCount` bytes of `pending`.
    @exclusivity(unchecked) private var pending = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    @exclusivity(unchecked) private var pendingCount = 0
    static let pendingLimit = 32 << 20
    /// Why the file cannot be written, once known.
    @exclusivity(unchecked) private var failure: String?
    /// The precision of the timestamps in the file's record headers.
    public let precision: TimestampPrecision
    private var closed = false
    /// Bytes to reserve before the first write (in a regular file).
    private let expectedSize: Int64?
    /// Whether they were asked for: the space past the file's end is then given back when it is closed (also
    /// after a reservation that failed part way, as one can when the disk fills).
    @exclusivity(unchecked) private var reserved = false
    private let buffer: UnsafeMutableRawBufferPointer
    @exclusivity(unchecked) private var buffered = 0
    static let bufferLength = 1 << 20

    /// Opens (creates) the file at `path`, or standard output for `-`; throws when it cannot be opened.
    /// `expectedSize`, when known (a rewrite's output is about the size of its input), is reserved in a regular
    /// file.
    public init(path: String, datalink: Int32, snapLength: Int32, precision: TimestampPrecision,
                expectedSize: Int64? = nil) throws(CaptureError)
    {
        let libpcapPrecision = precision == .nanoseconds ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO
        guard let dead = pcap_open_dead_with_tstamp_precision(datalink, snapLength, UInt32(libpcapPrecision)) else {
            throw CaptureError(path: path, message: "cannot create a capture of link type \(datalink)")
        }
        let descriptor = path == "-" ? dup(STDOUT_FILENO) : open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else {
            let message = systemErrorText()
            pcap_close(dead)
            throw CaptureError(path: path, message: message)
        }
        self.path = path
        self.deadHandle = dead
        self.descriptor = descriptor
        self.precision = precision
        buffer = .allocate(byteCount: Self.bufferLength, alignment: 16)
        var status = stat()
        let isRegularFile = path != "-" && fstat(descriptor, &status) == 0 && status.st_mode & S_IFMT == S_IFREG
        self.expectedSize = isRegularFile ? expectedSize : nil
        if isRegularFile, status.st_size > 0 {
            truncation = BackgroundTruncation(descriptor: descriptor)
            pending = .allocate(byteCount: Self.pendingLimit, alignment: 16)  // pages are taken as they are used
        } else {
            startDump()
            if let failure { throw CaptureError(path: path, message: failure) }
        }
    }

    deinit {
        if !closed {
            writeBuffered()
            finishTruncation()
            closeFile()
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
            emit(bytes)
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
            emit(records)
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

    /// Hands the gathered records on.
    private func writeBuffered() {
        guard buffered > 0 else { return }
        emit(UnsafeRawBufferPointer(rebasing: buffer[0..<buffered]))
        buffered = 0
    }

    /// Hands records to the file's stream, or keeps them while the file is being emptied (and there is room).
    private func emit(_ bytes: UnsafeRawBufferPointer) {
        if let truncation {
            if !truncation.isFinished, pendingCount + bytes.count <= pending.count {
                UnsafeMutableRawBufferPointer(rebasing: pending[pendingCount..<pendingCount + bytes.count])
                    .copyMemory(from: bytes)
                pendingCount += bytes.count
                return
            }
            finishTruncation()
        }
        if let dumper { fwrite(bytes.baseAddress, 1, bytes.count, pcap_dump_file(dumper)) }
    }

    /// Waits until the file is empty (if it is being emptied), then writes libpcap's header and the records kept.
    private func finishTruncation() {
        guard let truncation else { return }
        self.truncation = nil
        defer {
            pending.deallocate()
            pending = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        }
        let error = truncation.wait()
        guard error == 0 else {
            failure = "cannot empty the file: " + String(cString: strerror(error))
            return
        }
        startDump()
        emit(UnsafeRawBufferPointer(rebasing: pending[0..<pendingCount]))
    }

    /// Starts libpcap's dump on the file (it writes the file header); sets `failure` when it cannot.
    private func startDump() {
        reserveSpace()
        stream = fdopen(descriptor, "w")
        guard let stream else {
            failure = systemErrorText()
            return
        }
        dumper = pcap_dump_fopen(deadHandle, stream)
        if dumper == nil { failure = String(cString: pcap_geterr(deadHandle)) }
    }

    /// Flushes buffered frames; throws when the file system refused them (disk full, I/O error).
    public func flush() throws(CaptureError) {
        writeBuffered()
        finishTruncation()
        if let dumper, pcap_dump_flush(dumper) != 0 || ferror(pcap_dump_file(dumper)) != 0 {
            failure = systemErrorText()
        }
        if let failure {
            throw CaptureError(path: path, packetNumber: nil,
                               message: "write failed after \(packetsWritten) packets: \(failure)")
        }
    }

    /// Flushes and closes the file.
    public func close() throws(CaptureError) {
        guard !closed else { return }
        defer {
            closeFile()
            closed = true
        }
        try flush()
    }

    /// Closes the dump, or what of the file was opened when no dump was started on it.
    private func closeFile() {
        if let dumper { pcap_dump_flush(dumper) }
        releaseUnusedSpace()
        if let dumper {
            pcap_dump_close(dumper)
        } else if let stream {
            fclose(stream)
        } else {
            closeDescriptor(descriptor)
        }
    }
}

extension PcapWriter {
    /// Reserves `expectedSize` bytes from the start of the (empty) file without changing its size; a file system
    /// that cannot is written without.
    private func reserveSpace() {
        #if os(Linux)
        guard let expectedSize, expectedSize > 0 else { return }
        _ = fallocate(descriptor, Self.keepSize, 0, off_t(expectedSize))
        reserved = true
        #endif
    }

    /// Gives back the reserved space past the end of the file: `ftruncate` to the file's own size frees the
    /// blocks beyond it.
    private func releaseUnusedSpace() {
        var status = stat()
        if reserved, fstat(descriptor, &status) == 0 { _ = ftruncate(descriptor, status.st_size) }
    }

    /// Linux's `FALLOC_FL_KEEP_SIZE`: the reservation leaves the file's size as it is.
    private static let keepSize: Int32 = 1
}

/// Empties a file (`ftruncate` to 0) on a thread of its own.
final class BackgroundTruncation: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let finished = Atomic<Bool>(false)
    /// The `errno` of a failure, 0 on success; read after `done`.
    private var error: Int32 = 0

    init(descriptor: Int32) {
        Thread.detachNewThread { [self] in
            if ftruncate(descriptor, 0) != 0 { error = errno }
            finished.store(true, ordering: .releasing)
            done.signal()
        }
    }

    /// Whether the file is empty (or the truncation failed) already.
    var isFinished: Bool { finished.load(ordering: .acquiring) }

    /// Waits for the truncation (once); returns the `errno` of its failure, or 0.
    func wait() -> Int32 {
        done.wait()
        return error
    }
}

private func closeDescriptor(_ descriptor: Int32) { close(descriptor) }

func systemErrorText() -> String { String(cString: strerror(errno)) }
