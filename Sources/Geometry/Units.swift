/// Physical constants and unit conversions.
///
/// Internal units are Å, fs, amu, eV, K and the elementary charge. Every conversion to
/// another unit system (AMBER's ps and kcal/mol, ASE's time unit) goes through this file so
/// that there is exactly one value of each constant in the program.
public enum Units {
    /// Boltzmann constant in eV/K (CODATA 2018, exact since the 2019 SI).
    public static let boltzmann = 8.617333262e-5
    /// 1 eV/(Å·amu) expressed in Å/fs²: converts force/mass into acceleration.
    ///
    /// eV / (Å amu) = 1.602176634e-19 J / (1e-10 m · 1.66053906660e-27 kg) = 9.6485332e17 m/s²,
    /// and 1 Å/fs² = 1e20 m/s².
    public static let accelerationPerForceOverMass = 1.602176634e-19 / (1e-10 * 1.66053906660e-27) / 1e20
    /// amu·Å²/fs² expressed in eV: converts m·v² into energy.
    public static let energyPerMassVelocitySquared = 1.0 / accelerationPerForceOverMass
    /// eV/Å³ expressed in bar.
    public static let barPerEVPerCubicAngstrom = 1.602176634e-19 / 1e-30 / 1e5
    /// Density (g/cm³) of one amu per Å³: 1.66053906660e-24 g over 1e-24 cm³.
    public static let gramsPerCubicCentimetrePerAmuPerCubicAngstrom = 1.66053906660
    /// kcal/mol per eV (ASE's value: units.mol / units.kcal).
    public static let kcalPerMolPerEV = 23.060548012069493
    /// fs per ps.
    public static let femtosecondsPerPicosecond = 1000.0
    /// Speed of light in cm/fs, for wavenumbers.
    public static let speedOfLightCmPerFs = 2.99792458e-5
    /// ħ in eV·fs.
    public static let hbarEVfs = 0.6582119569
}
