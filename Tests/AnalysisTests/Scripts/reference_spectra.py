#!/usr/bin/env python3
"""Independent reference spectra for the Swift Analysis tests (optional helper; the tests
only read the CSV files this writes, never Python).

Reads the GFN2-xTB NVE references ../shared/data/xtb/<name>-gfn2-nve-300K.npz and writes
Tests/AnalysisTests/Fixtures/<name>-nve-reference-spectra.csv with the definitions of
../shared/docs/spectra.md, computed in a different way from the Swift code:

- autocorrelations by numpy's FFT padded to exactly 2N (Swift pads to the next 2^a3^b5^c7^d
  >= 2N), unbiased: C(k) = 1/(N-k) sum_n x(n) x(n+k), summed over atoms and components;
- the cosine transform by an explicit sum over lags (Swift uses an FFT):
  S(nu_k) = dt [w(0)C(0) + 2 sum_{j=1..L} w(j) C(j) cos(2 pi k j / M)], M = 2 L * 4,
  w = Hann cos^2(pi j / 2L), wavenumber nu_k = k / (c M dt);
- VDOS: g = 2 / (k_B T) * sum_i m_i S_i * c with T the kinetic temperature over 3N degrees of
  freedom (so the constants cancel: g = 2 * 3N / <sum m v^2> * c * S);
  the unweighted VDOS uses weight 1 and the same normalisation to 3N;
- IR: Mdot by central differences of the dipole, I = c * S[<Mdot(0).Mdot(t)>], and the
  harmonic quantum correction x / (1 - exp(-x)), x = hbar 2 pi c nu / (k_B T), T = 300 K.

The NetCDF files store velocities in single precision (A/ps); the .npz holds the double
precision originals. To compare like with like, velocities are rounded exactly as the .nc
stores them: float32(v * 1000) / 1000. The dipole is stored in double precision in both.

Usage: python3 reference_spectra.py [path/to/shared/data/xtb]
"""
import os
import sys

import numpy as np

C_CM_PER_FS = 2.99792458e-5
HBAR_EV_FS = 0.6582119569
KB_EV_PER_K = 8.617333262e-5
MAX_LAG_FS = 1000.0
PADDING = 4
MAX_WAVENUMBER = 4000.0
IR_TEMPERATURE = 300.0
# amu·Å²/fs² in eV (CODATA 2018 amu and e), for reporting the kinetic temperature only.
EV_PER_AMU_A2_FS2 = 1.66053906660e-27 * 1e10 / 1.602176634e-19


def autocorrelation(x, max_lag):
    """Unbiased autocorrelation of each column of x (frames x columns), summed over columns
    with weights applied by the caller; returns lags 0..max_lag per column."""
    n = x.shape[0]
    spectrum = np.fft.rfft(x, n=2 * n, axis=0)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, n=2 * n, axis=0)[: max_lag + 1]
    return acf / (n - np.arange(max_lag + 1))[:, None]


def cosine_transform(corr, dt, points, kmax):
    lags = np.arange(len(corr))
    max_lag = len(corr) - 1
    window = np.cos(0.5 * np.pi * lags / max_lag) ** 2
    wc = window * corr
    k = np.arange(kmax + 1)
    phase = 2 * np.pi * np.outer(k, lags[1:]) / points
    return dt * (wc[0] + 2 * (np.cos(phase) @ wc[1:]))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../../../shared/data/xtb")
    for name in ["ethanol", "water8"]:
        z = np.load(os.path.join(shared, f"{name}-gfn2-nve-300K.npz"))
        dt = float(z["frame_dt_fs"])
        symbols = [str(s) for s in z["symbols"]]
        masses = np.asarray(z["masses_amu"], dtype=float)
        v = np.float32(z["velocities_A_per_fs"] * 1000.0).astype(np.float64) / 1000.0
        frames, atoms, _ = v.shape
        max_lag = int(round(MAX_LAG_FS / dt))
        points = 2 * max_lag * PADDING
        spacing = 1.0 / (C_CM_PER_FS * points * dt)
        kmax = int(np.floor(MAX_WAVENUMBER / spacing + 1e-9))
        nu = np.arange(kmax + 1) * spacing

        acf = autocorrelation(v.reshape(frames, atoms * 3), max_lag)   # per column
        per_atom = acf.reshape(max_lag + 1, atoms, 3).sum(axis=2)        # lags x atoms
        dof = 3 * atoms
        msum = (masses[None, :] * (v ** 2).sum(axis=2)).sum(axis=1).mean()   # <sum m v^2>
        columns = {"frequency_cm-1": nu}
        weighted = per_atom * masses[None, :]
        total = cosine_transform(weighted.sum(axis=1), dt, points, kmax) * 2 * dof / msum * C_CM_PER_FS
        columns["vdos_total_per_cm-1"] = total
        for element in dict.fromkeys(symbols):
            sel = [i for i, s in enumerate(symbols) if s == element]
            part = cosine_transform(weighted[:, sel].sum(axis=1), dt, points, kmax) * 2 * dof / msum * C_CM_PER_FS
            columns[f"vdos_{element}_per_cm-1"] = part
        unweighted = per_atom.sum(axis=1)
        columns["vdos_unweighted_total_per_cm-1"] = (
            cosine_transform(unweighted, dt, points, kmax) * 2 * dof / unweighted[0] * C_CM_PER_FS)

        dip = np.asarray(z["dipole_eA"], dtype=float)
        mdot = (dip[2:] - dip[:-2]) / (2 * dt)
        ir_acf = autocorrelation(mdot, max_lag).sum(axis=1)
        ir = cosine_transform(ir_acf, dt, points, kmax) * C_CM_PER_FS
        x = HBAR_EV_FS * 2 * np.pi * C_CM_PER_FS * nu / (KB_EV_PER_K * IR_TEMPERATURE)
        q = np.ones_like(x)
        q[1:] = x[1:] / (-np.expm1(-x[1:]))
        columns["ir_classical_e2A2fs-2_per_cm-1"] = ir
        columns["ir_harmonic_e2A2fs-2_per_cm-1"] = ir * q

        out = os.path.join(here, "..", "Fixtures", f"{name}-nve-reference-spectra.csv")
        data = np.column_stack(list(columns.values()))
        np.savetxt(out, data, delimiter=",", header=",".join(columns), comments="", fmt="%.15e")
        integral = np.trapezoid(total, nu)
        print(f"{name}: dt {dt} fs, {frames} frames, max lag {max_lag}, M {points}, {kmax + 1} rows -> {out}; "
              f"VDOS integral to {nu[-1]:.0f} cm-1 = {integral:.4f} of {dof}; "
              f"T_kin = {msum * EV_PER_AMU_A2_FS2 / (dof * KB_EV_PER_K):.2f} K")


if __name__ == "__main__":
    main()
