/// Cuts a YAML stream into runs of whole documents, so that a manifest of thousands of documents is parsed
/// and decoded on every core.
///
/// A cut is made only before a line that starts a document: `---` at the start of a line, then a space, a tab
/// or the line's end. YAML forbids such a line inside any scalar, so each run holds the same documents, in the
/// same order, as the whole stream; text that breaks the rule fails to parse in its run and is then read whole.
/// A stream with directives (`%YAML`, `%TAG` lines, which belong to the document after them) is not cut.
enum YAMLStreamRuns {
    /// Up to `count` runs covering `text` in order, cut at the document starts nearest to equal byte shares.
    static func runs(of text: String, count: Int) -> [Substring] {
        let bytes = text.utf8
        guard count > 1, bytes.count > 0 else { return [text[...]] }
        var starts: [String.Index] = []
        var lineStart = bytes.startIndex
        while lineStart < bytes.endIndex {
            let rest = bytes[lineStart...]
            if rest.first == UInt8(ascii: "%") { return [text[...]] }
            if lineStart != bytes.startIndex, startsDocument(rest) { starts.append(lineStart) }
            guard let newline = rest.firstIndex(of: UInt8(ascii: "\n")) else { break }
            lineStart = bytes.index(after: newline)
        }
        var cuts: [String.Index] = []
        for share in 1..<count {
            let target = bytes.index(bytes.startIndex, offsetBy: bytes.count * share / count)
            if let cut = starts.first(where: { $0 >= target && $0 > (cuts.last ?? bytes.startIndex) }) {
                cuts.append(cut)
            }
        }
        return zip([text.startIndex] + cuts, cuts + [text.endIndex]).map { text[$0..<$1] }
    }

    /// `---` then a space, a tab, a line end or the end of the text.
    private static func startsDocument(_ line: Substring.UTF8View) -> Bool {
        guard line.starts(with: "---".utf8) else { return false }
        guard let after = line.dropFirst(3).first else { return true }
        return after.isWhiteSpace
    }
}
