import Dynamics
import ENINet
import Geometry
import Potentials
import Deck

extension RunSetup {
    static func eninetPotential(_ settings: ENINetSettings) throws -> any Potential {
        let precision: ENINet.ENINetPrecision = settings.precision == Deck.ENINetPrecision.double ? .double : .float
        return try ENINetPotential(contentsOf: settings.modelPath, precision: precision, skin: settings.skinA)
    }
}

/// A dipole model evaluated on one configuration after another (MD frames or a stored
/// trajectory): keeps its neighbour list, so consecutive frames reuse it.
final class DipoleEvaluator {
    let path: String
    let model: ENINetModel
    private let neighborList: NeighborList

    init(path: String, precision: ENINet.ENINetPrecision = .float) throws {
        self.path = path
        model = try ENINetModel(contentsOf: path, precision: precision)
        guard model.configuration.target == .dipole else {
            throw InputError("\(path): the model predicts \(model.configuration.target.rawValue), not a dipole (train one with model.target = \"dipole\")")
        }
        neighborList = model.makeNeighborList(skin: 1.0)
    }

    /// The dipole (e·Å) about the centre of standard masses (``ENINetOutput/readoutOrigin(positions:atomicNumbers:)``).
    func dipole(atomicNumbers: [Int], positions: [Vec3], cell: Cell?) throws -> Vec3 {
        let graph = try model.graph(positions: positions, cell: cell, neighborList: neighborList)
        let out = try model.evaluate(atomicNumbers: atomicNumbers, positions: positions, graph: graph, forces: false)
        let mu = out.dipole(positions: positions, atomicNumbers: atomicNumbers)
        guard mu.isFinite else {
            throw InputError("\(path): the dipole is not finite (\(mu))")
        }
        return mu
    }

    func dipole(of state: MDState) throws -> Vec3 {
        try dipole(atomicNumbers: state.atomicNumbers, positions: state.positions, cell: state.cell)
    }
}
