import Foundation
import Yams

/// Everything loaded from manifests, before validation and endpoint resolution.
public struct ClusterManifests: Sendable {
    public var services: [Located<ServiceObject>] = []
    public var endpoints: [Located<EndpointsObject>] = []
    public var endpointSlices: [Located<EndpointSliceObject>] = []
    public var pods: [Located<PodObject>] = []

    public init() {}
}

/// Loads Kubernetes manifests: YAML files with one or many documents (`---`), JSON files, `kind: List`, and
/// directories (every `.yaml`, `.yml` and `.json` file inside, in name order).
public enum ManifestLoader {
    /// Loads all paths; a directory contributes its manifest files.
    public static func load(paths: [String]) throws(ManifestError) -> ClusterManifests {
        var manifests = ClusterManifests()
        for path in paths {
            for file in try manifestFiles(at: path) {
                try load(file: file, into: &manifests)
            }
        }
        return manifests
    }

    /// Parses one file's content into `manifests`: YAML (one or many documents), or JSON as `kubectl get -o json`
    /// prints it; `name` is used in error messages.
    public static func load(yaml: String, name: String, into manifests: inout ClusterManifests)
        throws(ManifestError)
    {
        if let first = yaml.utf8.first(where: { ![9, 10, 13, 32].contains($0) }),
           first == UInt8(ascii: "{") || first == UInt8(ascii: "[")
        {
            // JSON is YAML too, but decodes directly; text that only looks like JSON is read as YAML.
            let json = Array(yaml.utf8)
            do {
                let document = try decodeList(json, at: json.indices)
                    ?? JSONDecoder().decode(ManifestDocument.self, from: Data(json))
                document.add(to: &manifests, origin: "\(name): document 1")
                return
            } catch let error as DecodingError {
                if !isSyntaxError(error) { throw describe(error, file: name, documentsIndexed: false) }
            } catch {}
        }
        // Runs of documents decode in parallel; if one fails, the whole text is decoded again, alone, so that
        // the error names its document and line as in the whole file.
        let runs = YAMLStreamRuns.runs(of: yaml, count: ProcessInfo.processInfo.activeProcessorCount)
        let decodedRuns = runs.count > 1 ? runs.concurrentMap { try? decode(yaml: String($0), name: name) } : []
        let documents = decodedRuns.isEmpty || decodedRuns.contains { $0 == nil }
            ? try decode(yaml: yaml, name: name) : decodedRuns.flatMap { $0! }
        for (index, document) in documents.enumerated() {
            document.add(to: &manifests, origin: "\(name): document \(index + 1)")
        }
    }

    /// The documents of a YAML text, parsed by libyaml and decoded as the JSON they stand for.
    private static func decode(yaml: String, name: String) throws(ManifestError) -> [ManifestDocument] {
        let json: [UInt8]
        let count: Int
        do {
            (json, count) = try YAMLAsJSON.documents(of: yaml)
        } catch {
            throw ManifestError(origin: name, message: "not valid YAML: \(yamlProblem(yaml, failure: error))")
        }
        if count == 1, let list = decodeList(json, at: 1..<json.count - 1) { return [list] }
        do {
            return try JSONDecoder().decode([ManifestDocument].self, from: Data(json))
        } catch let error as DecodingError {
            throw describe(error, file: name, documentsIndexed: true)
        } catch {
            throw ManifestError(origin: name, message: "\(error)")
        }
    }

    /// The `List` object at `range` of `json` (a document), decoded with its items in parallel runs; nil for a
    /// short list, for anything else, and when a piece fails to decode (decoding the whole then says where).
    private static func decodeList(_ json: [UInt8], at range: Range<Int>) -> ManifestDocument? {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        guard cores > 1,
              let list = json.withUnsafeBytes({ JSONListItems(UnsafeRawBufferPointer(rebasing: $0[range])) }),
              list.elements.count >= parallelListItems else { return nil }
        // The object without its items must be a List; then runs of its items decode as arrays, in parallel.
        let items = list.elements.map { $0.lowerBound + range.lowerBound..<$0.upperBound + range.lowerBound }
        let inside = list.inside.lowerBound + range.lowerBound..<list.inside.upperBound + range.lowerBound
        let outside = json[range.lowerBound..<inside.lowerBound] + json[inside.upperBound..<range.upperBound]
        guard case .list(let none)? = try? JSONDecoder().decode(ManifestDocument.self, from: Data(outside)),
              none.isEmpty else { return nil }
        let runs = (0..<cores).map { run in
            items[items.count * run / cores].lowerBound..<items[items.count * (run + 1) / cores - 1].upperBound
        }
        let decoded = runs.concurrentMap { run in
            try? JSONDecoder().decode([ManifestDocument].self, from: Data("[".utf8 + json[run] + "]".utf8))
        }
        return decoded.contains { $0 == nil } ? nil : .list(decoded.flatMap { $0! })
    }

    /// Lists shorter than this decode in one piece.
    static let parallelListItems = 256

    /// What is wrong with a YAML text: as Yams words libyaml's error (with the line and the text around it, the
    /// middle of which is left out past `problemLength` characters: the text may be a mapping of thousands of
    /// lines), or what JSON cannot hold.
    private static func yamlProblem(_ yaml: String, failure: YAMLAsJSON.Failure) -> String {
        do {
            let parser = try Parser(yaml: yaml, resolver: .basic, encoding: .utf8)
            while try parser.nextRoot() != nil {}
        } catch {
            let problem = "\(error)".split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.joined(separator: " ")
            guard problem.count > problemLength else { return problem }
            return problem.prefix(problemLength * 2 / 3) + " ... " + problem.suffix(problemLength / 3)
        }
        return failure.description
    }

    /// The longest description of a YAML problem.
    static let problemLength = 300

    private static func load(file: String, into manifests: inout ClusterManifests) throws(ManifestError) {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ManifestError(origin: file, message: "cannot read file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ManifestError(origin: file, message: "not UTF-8 text")
        }
        try load(yaml: text, name: file, into: &manifests)
    }

    private static func manifestFiles(at path: String) throws(ManifestError) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ManifestError(origin: path, message: "no such file or directory")
        }
        guard isDirectory.boolValue else { return [path] }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else {
            throw ManifestError(origin: path, message: "cannot list directory")
        }
        return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }
            .sorted().map { (path as NSString).appendingPathComponent($0) }
    }

    /// Whether decoding failed on the text itself (not JSON) rather than on a document's content.
    private static func isSyntaxError(_ error: DecodingError) -> Bool {
        if case .dataCorrupted(let context) = error { return context.codingPath.isEmpty }
        return false
    }

    /// The error with its place: the document (`documentsIndexed`: the path starts with its index) and list
    /// items become the origin, the rest of the path the field.
    private static func describe(_ error: DecodingError, file: String, documentsIndexed: Bool) -> ManifestError {
        func place(_ path: [any CodingKey]) -> (origin: String, field: String) {
            var path = path[...]
            var origin = "\(file): document \((documentsIndexed ? path.popFirst()?.intValue ?? 0 : 0) + 1)"
            while path.count >= 2, path.first?.stringValue == "items", let item = path.dropFirst().first?.intValue {
                origin += ": items[\(item)]"
                path = path.dropFirst(2)
            }
            return (origin, fieldPath(Array(path)))
        }
        switch error {
        case .typeMismatch(let type, let context):
            let (origin, field) = place(context.codingPath)
            return ManifestError(origin: origin, field: field, message: "expected \(typeName(type))")
        case .valueNotFound(let type, let context):
            let (origin, field) = place(context.codingPath)
            return ManifestError(origin: origin, field: field, message: "expected \(typeName(type)), found null")
        case .keyNotFound(let key, let context):
            let (origin, field) = place(context.codingPath + [key])
            return ManifestError(origin: origin, field: field, message: "missing")
        case .dataCorrupted(let context):
            let (origin, field) = place(context.codingPath)
            return ManifestError(origin: origin, field: field, message: context.debugDescription)
        @unknown default:
            return ManifestError(origin: file, message: "\(error)")
        }
    }

    private static func fieldPath(_ path: [any CodingKey]) -> String {
        var text = ""
        for key in path {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: "an integer"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        default: "\(type)".hasPrefix("Array") ? "a list" : "a mapping"
        }
    }
}
