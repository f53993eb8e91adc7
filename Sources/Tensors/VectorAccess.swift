/// Four or eight consecutive elements as one vector, at any alignment: the kernels for rows of
/// the triplet width (four channels, or two rows of four) load and store whole rows this way.
@inline(__always) func quad<T: TensorScalar>(_ p: UnsafePointer<T>) -> SIMD4<T> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD4<T>.self)
}
@inline(__always) func setQuad<T: TensorScalar>(_ p: UnsafeMutablePointer<T>, _ value: SIMD4<T>) {
    UnsafeMutableRawPointer(p).storeBytes(of: value, as: SIMD4<T>.self)
}
@inline(__always) func lanes<T: TensorScalar>(_ p: UnsafePointer<T>) -> SIMD8<T> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<T>.self)
}
@inline(__always) func setLanes<T: TensorScalar>(_ p: UnsafeMutablePointer<T>, _ value: SIMD8<T>) {
    UnsafeMutableRawPointer(p).storeBytes(of: value, as: SIMD8<T>.self)
}
