import Foundation

// Optimisers that update parameters in place.

/// Adam (Kingma & Ba) with optional weight decay: added to the gradient (L2, `decoupled: false`)
/// or applied to the weights directly (AdamW, Loshchilov & Hutter, `decoupled: true`),
/// following PyTorch's `Adam` and `AdamW` update rules.
public final class Adam<Scalar: TensorScalar> {
    public let parameters: [Tensor<Scalar>]
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    public var weightDecay: Double
    public var decoupledWeightDecay: Bool
    /// The number of steps taken (bias corrections depend on it).
    public var stepCount = 0
    /// First and second moment estimates, one array per parameter (for checkpoints).
    public var firstMoments: [[Double]]
    public var secondMoments: [[Double]]

    public init(parameters: [Tensor<Scalar>], learningRate: Double = 1e-3, beta1: Double = 0.9,
                beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0,
                decoupledWeightDecay: Bool = false) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        firstMoments = parameters.map { [Double](repeating: 0, count: $0.count) }
        secondMoments = firstMoments
    }

    /// AdamW: Adam with decoupled weight decay (PyTorch's default decay 0.01).
    public static func adamW(parameters: [Tensor<Scalar>], learningRate: Double = 1e-3, beta1: Double = 0.9,
                             beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0.01) -> Adam {
        Adam(parameters: parameters, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
             weightDecay: weightDecay, decoupledWeightDecay: true)
    }

    /// One update with the given gradients (one per parameter, same shapes).
    public func step(gradients: [Tensor<Scalar>]) throws {
        guard gradients.count == parameters.count else {
            throw TensorError("Adam.step: \(gradients.count) gradients for \(parameters.count) parameters")
        }
        for (p, g) in zip(parameters, gradients) where p.count != g.count {
            throw TensorError("Adam.step: gradient of shape \(g.shape) for parameter of shape \(p.shape)")
        }
        stepCount += 1
        let t = Double(stepCount)
        let correction1 = 1 - Foundation.pow(beta1, t)
        let correction2 = 1 - Foundation.pow(beta2, t)
        for k in parameters.indices {
            let p = parameters[k]
            gradients[k].withUnsafeBufferPointer { g in
                p.withUnsafeMutableBufferPointer { w in
                    firstMoments[k].withUnsafeMutableBufferPointer { m in
                        secondMoments[k].withUnsafeMutableBufferPointer { v in
                            for i in 0..<w.count {
                                var weight = w[i].tensorDouble
                                var grad = g[i].tensorDouble
                                if weightDecay != 0 {
                                    if decoupledWeightDecay { weight *= 1 - learningRate * weightDecay }
                                    else { grad += weightDecay * weight }
                                }
                                m[i] = beta1 * m[i] + (1 - beta1) * grad
                                v[i] = beta2 * v[i] + (1 - beta2) * grad * grad
                                let denominator = (v[i] / correction2).squareRoot() + epsilon
                                weight -= learningRate * (m[i] / correction1) / denominator
                                w[i] = Scalar(tensorDouble: weight)
                            }
                        }
                    }
                }
            }
        }
    }

    /// One update with the gradients accumulated in the parameters' `grad` (zeros where none).
    public func step() throws {
        try step(gradients: parameters.map { $0.grad ?? Tensor<Scalar>.zeros($0.shape) })
    }
}

/// Plain stochastic gradient descent (for tests and simple fits).
public final class SGD<Scalar: TensorScalar> {
    public let parameters: [Tensor<Scalar>]
    public var learningRate: Double

    public init(parameters: [Tensor<Scalar>], learningRate: Double) {
        self.parameters = parameters
        self.learningRate = learningRate
    }

    public func step(gradients: [Tensor<Scalar>]) throws {
        guard gradients.count == parameters.count else { throw TensorError("SGD.step: gradient count") }
        for (p, g) in zip(parameters, gradients) {
            guard p.count == g.count else { throw TensorError("SGD.step: gradient of shape \(g.shape) for \(p.shape)") }
            let lr = Scalar(tensorDouble: learningRate)
            g.withUnsafeBufferPointer { gp in
                p.withUnsafeMutableBufferPointer { w in
                    for i in 0..<w.count { w[i] -= lr * gp[i] }
                }
            }
        }
    }
}
