import CYaml

/// Writes a YAML stream as the JSON array of its documents, straight from libyaml's events (the parser inside
/// Yams), reading scalars as Kubernetes reads YAML (through JSON): plain integers, booleans and nulls are typed,
/// every other scalar is a string, and a mapping key is always a string. Decoding that JSON with Foundation is
/// many times faster than building and decoding a YAML node tree, which matters for clusters of thousands of
/// Services. Anchors and aliases are resolved; of the tags, `!!str` is read.
struct YAMLAsJSON {
    /// Why a stream has no JSON: libyaml's syntax error (Yams words it better), or what JSON cannot hold.
    enum Failure: Error, Equatable, CustomStringConvertible {
        case syntax
        case duplicateKey(String)
        case keyNotScalar
        case undefinedAlias(String)
        case excessiveAliasing

        var description: String {
            switch self {
            case .syntax: "libyaml could not parse it"
            case .duplicateKey(let key): "mapping key \"\(key)\" is already defined"
            case .keyNotScalar: "a mapping key is a list or a mapping (JSON and Kubernetes take only strings)"
            case .undefinedAlias(let name): "alias *\(name) refers to no anchor of its document"
            case .excessiveAliasing: "the document contains excessive aliasing (its aliases expand it many times over)"
            }
        }
    }

    /// The stream's documents as one JSON array, and how many there are.
    static func documents(of yaml: String) throws(Failure) -> (json: [UInt8], count: Int) {
        var text = yaml
        return try text.withUTF8 { bytes in Result { () throws(Failure) in try convert(bytes) } }.get()
    }

    private static func convert(_ bytes: UnsafeBufferPointer<UInt8>) throws(Failure) -> (json: [UInt8], count: Int) {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw Failure.syntax }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(&parser, bytes.baseAddress, bytes.count)
        var writer = YAMLAsJSON(capacity: bytes.count + bytes.count / 2)
        var event = yaml_event_t()
        while yaml_parser_parse(&parser, &event) == 1 {
            defer { yaml_event_delete(&event) }
            if event.type == YAML_STREAM_END_EVENT { return writer.finish() }
            try writer.take(event)
        }
        throw Failure.syntax
    }

    /// A mapping or sequence being written.
    private struct Level {
        let isMapping: Bool
        /// Keys and values written so far (a mapping's even entries are keys).
        var entries = 0
        /// Where this mapping's keys start in `keys`.
        let firstKey: Int
        /// The hashes of the mapping's keys, once it has more than `keysCompared` of them.
        var keyHashes: Set<Int>?
        let anchor: [UInt8]?
        let start: Int
    }

    private var json: [UInt8] = [UInt8(ascii: "[")]
    private var levels: [Level] = []
    /// The written keys of the open mappings, as ranges of `json`: a key may not repeat in its mapping.
    private var keys: [Range<Int>] = []
    /// A new key is compared with each of its mapping's keys up to this many; past them, with those of the same
    /// hash alone (a ConfigMap may hold tens of thousands of keys).
    static let keysCompared = 32
    /// The current document's anchors (an alias refers to one in its own document).
    private var anchors: [[UInt8]: Range<Int>] = [:]
    private var documentCount = 0
    /// Where the current document's JSON starts, and how many of its bytes are copies made for aliases.
    private var documentStart = 0
    private var aliasBytes = 0

    private init(capacity: Int) { json.reserveCapacity(capacity) }

    private mutating func finish() -> (json: [UInt8], count: Int) {
        json.append(UInt8(ascii: "]"))
        return (json, documentCount)
    }

    private mutating func take(_ event: yaml_event_t) throws(Failure) {
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            if documentCount > 0 { json.append(UInt8(ascii: ",")) }
            documentCount += 1
            anchors.removeAll()
            (documentStart, aliasBytes) = (json.count, 0)
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            let value = UnsafeBufferPointer(start: scalar.value, count: scalar.length)
            let written: Range<Int>
            if expectsKey {
                written = try appendKey { Self.appendString(value, to: &$0) }
            } else {
                beginValue()
                let start = json.count
                let plain = scalar.style == YAML_PLAIN_SCALAR_STYLE || scalar.style == YAML_ANY_SCALAR_STYLE
                appendScalar(value, typed: plain && !Self.isStringTag(scalar.tag))
                written = start..<json.count
            }
            if let anchor = scalar.anchor { anchors[Self.name(anchor)] = written }
        case YAML_ALIAS_EVENT:
            guard let anchor = event.data.alias.anchor else { throw Failure.syntax }
            guard let range = anchors[Self.name(anchor)] else {
                throw Failure.undefinedAlias(String(decoding: Self.name(anchor), as: UTF8.self))
            }
            let copy = Array(json[range])  // not a slice of `json`, which would then be copied to append to it
            if expectsKey {
                guard copy.first == UInt8(ascii: "\"") else { throw Failure.keyNotScalar }
                _ = try appendKey { $0.append(contentsOf: copy) }
            } else {
                beginValue()
                json.append(contentsOf: copy)
            }
            aliasBytes += copy.count
            if isExcessivelyAliased { throw Failure.excessiveAliasing }
        case YAML_SEQUENCE_START_EVENT:
            try open(isMapping: false, anchor: event.data.sequence_start.anchor)
        case YAML_MAPPING_START_EVENT:
            try open(isMapping: true, anchor: event.data.mapping_start.anchor)
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            let level = levels.removeLast()
            keys.removeSubrange(level.firstKey...)
            json.append(UInt8(ascii: level.isMapping ? "}" : "]"))
            if let anchor = level.anchor { anchors[anchor] = level.start..<json.count }
        default:
            break  // stream start, document end
        }
    }

    /// Whether copies made for aliases take more of the current document than go-yaml (which Kubernetes reads YAML
    /// with) lets aliases expand it: go-yaml checks a document of over 1,000 nodes with over 100 from aliases;
    /// here a node counts as ten bytes of JSON. Past it, a "billion laughs" document of a few lines would take
    /// gigabytes.
    private var isExcessivelyAliased: Bool {
        let written = json.count - documentStart
        return aliasBytes > 1_000 && written > 10_000
            && Double(aliasBytes) > Self.allowedAliasShare(ofBytes: written) * Double(written)
    }

    /// The share of a document's JSON that copies made for aliases may take: go-yaml's share of decoded nodes, 99%
    /// up to 400,000 nodes falling to 10% at 4,000,000 (in bytes, as above).
    static func allowedAliasShare(ofBytes bytes: Int) -> Double {
        switch bytes {
        case ...4_000_000: 0.99
        case 40_000_000...: 0.10
        default: 0.99 - 0.89 * Double(bytes - 4_000_000) / 36_000_000
        }
    }

    /// Whether the next node is a mapping key.
    private var expectsKey: Bool { levels.last.map { $0.isMapping && $0.entries % 2 == 0 } ?? false }

    /// Counts a value (not a key) in its level, after the comma a sequence item needs.
    private mutating func beginValue() {
        guard let index = levels.indices.last else { return }
        if !levels[index].isMapping && levels[index].entries > 0 { json.append(UInt8(ascii: ",")) }
        levels[index].entries += 1
    }

    /// Writes a mapping key (`write` appends it as a JSON string) after its comma, and its colon; the key may not
    /// be one the mapping has already. Returns where the key's string is.
    private mutating func appendKey(_ write: (inout [UInt8]) -> Void) throws(Failure) -> Range<Int> {
        let index = levels.count - 1
        if levels[index].entries > 0 { json.append(UInt8(ascii: ",")) }
        let start = json.count
        write(&json)
        let key = start..<json.count
        if isRepeated(key, in: index) {
            throw Failure.duplicateKey(String(decoding: json[key].dropFirst().dropLast(), as: UTF8.self))
        }
        keys.append(key)
        json.append(UInt8(ascii: ":"))
        levels[index].entries += 1
        return key
    }

    /// Whether the mapping at `levels[index]` has the key just written at `key` already.
    private mutating func isRepeated(_ key: Range<Int>, in index: Int) -> Bool {
        let written = keys[levels[index].firstKey...]
        func isAmongWritten() -> Bool { written.contains { json[$0].elementsEqual(json[key]) } }
        guard written.count >= Self.keysCompared else { return isAmongWritten() }
        if levels[index].keyHashes == nil { levels[index].keyHashes = Set(written.map { json[$0].hashValue }) }
        return !levels[index].keyHashes!.insert(json[key].hashValue).inserted && isAmongWritten()
    }

    private mutating func open(isMapping: Bool, anchor: UnsafeMutablePointer<yaml_char_t>?) throws(Failure) {
        if expectsKey { throw Failure.keyNotScalar }
        beginValue()
        levels.append(Level(isMapping: isMapping, firstKey: keys.count, anchor: anchor.map(Self.name),
                            start: json.count))
        json.append(UInt8(ascii: isMapping ? "{" : "["))
    }

    /// An anchor's name, from libyaml's C string.
    private static func name(_ anchor: UnsafeMutablePointer<yaml_char_t>) -> [UInt8] {
        Array(UnsafeBufferPointer(start: anchor, count: strlen(anchor)))
    }

    /// `!!str`: the one tag read, since it makes a plain scalar a string (`name: !!str 80`).
    private static func isStringTag(_ tag: UnsafeMutablePointer<yaml_char_t>?) -> Bool {
        guard let tag else { return false }
        return strcmp(tag, "tag:yaml.org,2002:str") == 0
    }

    private mutating func appendScalar(_ value: UnsafeBufferPointer<UInt8>, typed: Bool) {
        guard typed else { return Self.appendString(value, to: &json) }
        if value.count <= 5, let word = Self.typedWords[String(decoding: value, as: UTF8.self)] {
            json.append(contentsOf: word.utf8)
        } else if Self.isInteger(value) {
            json.append(contentsOf: value)
        } else {
            Self.appendString(value, to: &json)
        }
    }

    /// Plain scalars that are JSON's null, true and false (YAML 1.1's core words Kubernetes reads).
    private static let typedWords: [String: String] = [
        "": "null", "~": "null", "null": "null", "Null": "null", "NULL": "null",
        "true": "true", "True": "true", "TRUE": "true", "false": "false", "False": "false", "FALSE": "false",
    ]

    /// A JSON integer: an optional minus and digits without a leading zero, at most 18 of them.
    private static func isInteger(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        let digits = value.first == UInt8(ascii: "-") ? value.dropFirst() : value[...]
        return !digits.isEmpty && digits.count <= 18 && digits.allSatisfy { (48...57).contains($0) }
            && (digits.count == 1 || digits.first != UInt8(ascii: "0"))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func appendString(_ value: UnsafeBufferPointer<UInt8>, to text: inout [UInt8]) {
        text.append(UInt8(ascii: "\""))
        for byte in value {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                text.append(UInt8(ascii: "\\"))
                text.append(byte)
            case 0..<0x20:
                text.append(contentsOf: "\\u00".utf8)
                text.append(hexDigits[Int(byte >> 4)])
                text.append(hexDigits[Int(byte & 0xF)])
            default:
                text.append(byte)
            }
        }
        text.append(UInt8(ascii: "\""))
    }
}
