import Geometry

/// Initial velocities.
public enum InitialVelocities {
    /// Draws velocities from the Maxwell–Boltzmann distribution at `temperature`.
    ///
    /// Each component is N(0, k_B T/m) in atom order (x, y, z per atom) from `random`. With
    /// `removeDrift` the centre-of-mass velocity is then subtracted (ASE `Stationary`, LAMMPS
    /// `mom yes`). With `exactTemperature` the velocities are finally scaled so that the kinetic
    /// temperature equals `temperature` exactly, counting `degreesOfFreedom` (give the
    /// integrator's, so that the run's first logged temperature is the one asked for), or by
    /// default 3N − 3 when the drift was removed and 3N otherwise (LAMMPS `velocity create`
    /// scales to its temperature compute; ASE does not scale, so pass `false` to reproduce an
    /// ASE draw's statistics).
    public static func maxwellBoltzmann(masses: [Double], temperature: Double, random: inout RandomStream,
                                        removeDrift: Bool = true, exactTemperature: Bool = true,
                                        degreesOfFreedom: Int? = nil) -> [Vec3] {
        let kT = Units.boltzmann * max(0, temperature) * Units.accelerationPerForceOverMass
        var v = masses.map { m -> Vec3 in
            let s = (kT / m).squareRoot()
            let x = random.normal(), y = random.normal(), z = random.normal()
            return s * Vec3(x, y, z)
        }
        let n = masses.count
        if removeDrift, n > 0 {
            var p = Vec3.zero
            for i in 0..<n { p += masses[i] * v[i] }
            let vcm = p / masses.reduce(0, +)
            for i in 0..<n { v[i] -= vcm }
        }
        if exactTemperature, n > 0 {
            var twiceK = 0.0
            for i in 0..<n { twiceK += masses[i] * (v[i] * v[i]).sum() }
            twiceK *= Units.energyPerMassVelocitySquared
            let dof = Double(degreesOfFreedom ?? (removeDrift && n > 1 ? 3 * n - 3 : 3 * n))
            if twiceK > 0 {
                let scale = (dof * Units.boltzmann * max(0, temperature) / twiceK).squareRoot()
                for i in 0..<n { v[i] *= scale }
            }
        }
        return v
    }
}
