#!/usr/bin/env python3
"""Converts ../shared/data/ase-lj/ar108-lj-vv.npz into Fixtures/ar108-lj-vv.txt.

Plain text, every float written with repr() so it parses back to the same bits.
Layout (one record per line, whitespace separated):
  atoms N
  cell  9 numbers (rows a, b, c; Å)
  lj sigma_A epsilon_eV rc_A dt_fs
  mass m_1 ... m_N (amu)
  N lines "x y z" initial positions (Å), then N lines initial velocities (Å/fs)
  N lines forces at step 0 (eV/Å)
  frames F
  per frame: "frame step epot_eV ekin_eV etot_eV s_xx s_yy s_zz s_yz s_xz s_xy" then N lines positions (Å)
Usage: python3 make_ase_fixture.py [path/to/ar108-lj-vv.npz]
"""
import sys, os
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../../../shared/data/ase-lj/ar108-lj-vv.npz")
d = np.load(src)
out = os.path.join(here, "../Fixtures/ar108-lj-vv.txt")
r = repr
with open(out, "w") as f:
    n = len(d["masses_amu"])
    f.write(f"atoms {n}\n")
    f.write("cell " + " ".join(r(float(x)) for x in d["cell_A"].ravel()) + "\n")
    f.write(f"lj {r(float(d['sigma_A']))} {r(float(d['epsilon_eV']))} {r(float(d['rc_A']))} {r(float(d['dt_fs']))}\n")
    f.write("mass " + " ".join(r(float(x)) for x in d["masses_amu"]) + "\n")
    for key in ("positions0_A", "velocities0_A_per_fs"):
        for row in d[key]:
            f.write(" ".join(r(float(x)) for x in row) + "\n")
    for row in d["forces_eV_per_A"][0]:
        f.write(" ".join(r(float(x)) for x in row) + "\n")
    f.write(f"frames {len(d['steps'])}\n")
    for k, step in enumerate(d["steps"]):
        vals = [d["epot_eV"][k], d["ekin_eV"][k], d["etot_eV"][k]] + list(d["stress_voigt_eV_per_A3"][k])
        f.write(f"frame {int(step)} " + " ".join(r(float(x)) for x in vals) + "\n")
        for row in d["positions_A"][k]:
            f.write(" ".join(r(float(x)) for x in row) + "\n")
print("wrote", out)
