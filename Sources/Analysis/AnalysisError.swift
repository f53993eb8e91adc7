/// A failure of an analysis that the user can fix: a missing variable, a lag longer than the
/// trajectory, a frequency above the Nyquist limit. The message says what is missing and how to
/// supply it.
public struct AnalysisError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
