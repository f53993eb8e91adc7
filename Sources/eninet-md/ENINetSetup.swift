import ENINet
import Potentials
import Deck

extension RunSetup {
    static func eninetPotential(_ settings: ENINetSettings) throws -> any Potential {
        let precision: ENINet.ENINetPrecision = settings.precision == Deck.ENINetPrecision.double ? .double : .float
        return try ENINetPotential(contentsOf: settings.modelPath, precision: precision, skin: settings.skinA)
    }
}
