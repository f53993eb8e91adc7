import Potentials
import Deck

extension RunSetup {
    static func eninetPotential(_ settings: ENINetSettings) throws -> any Potential {
        throw InputError("\(settings.modelPath): the ENINet potential is not available in this build yet")
    }
}
