#!/usr/bin/env python3
"""Label configurations with GFN2-xTB energies and forces, as extended XYZ.

Optional helper for building training data (not needed to build, run or test ENINetMD).
It needs the `xtb` program (Debian package `xtb`, GFN2-xTB 6.5.1) and nothing but the
Python standard library.

    Scripts/xtb-label.py INPUT.xyz OUTPUT.extxyz [--every K] [--max-bond-stretch A --reference REF.extxyz]

INPUT is a multi-frame XYZ file (plain or extended; only species and the first three
columns are read). Every K-th frame is labelled by `xtb --gfn 2 --grad --acc 0.01` (the
accuracy of the shared GFN2 data; its labels reproduce those to 1e-7 eV and 1e-6 eV/A)
and written in the layout of ../shared/data/xtb/*.extxyz: energy in eV, forces in eV/A,
positions shifted to the centre of mass. With --max-bond-stretch, frames in which a bond
(an atom pair closer than 1.6 A in the first frame of REF) is longer than its mean in REF
by more than the given distance are skipped: past that point a trajectory shows a broken
molecule, not the configurations the model must learn.
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile

# ASE's constants (CODATA 2014), so that the labels match the shared data's units exactly.
HARTREE_EV = 27.211386024367243
BOHR_A = 0.52917721067
MASSES = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999}


def read_frames(path):
    with open(path) as handle:
        lines = handle.read().splitlines()
    frames, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        n = int(lines[i].split()[0])
        atoms = []
        for line in lines[i + 2:i + 2 + n]:
            parts = line.split()
            atoms.append((parts[0], [float(x) for x in parts[1:4]]))
        if len(atoms) != n:
            sys.exit(f"{path}: frame {len(frames)} has {len(atoms)} of {n} atoms")
        frames.append(atoms)
        i += 2 + n
    return frames


def bonds_and_means(reference):
    first = reference[0]
    pairs = [(a, b) for a in range(len(first)) for b in range(a + 1, len(first))
             if math.dist(first[a][1], first[b][1]) < 1.6]
    means = [sum(math.dist(f[a][1], f[b][1]) for f in reference) / len(reference) for a, b in pairs]
    return pairs, means


def label(atoms, workdir):
    xyz = os.path.join(workdir, "frame.xyz")
    with open(xyz, "w") as handle:
        handle.write(f"{len(atoms)}\n\n")
        for symbol, (x, y, z) in atoms:
            handle.write(f"{symbol} {x:.10f} {y:.10f} {z:.10f}\n")
    for stale in ("gradient", "energy", "charges", "wbo", "xtbrestart"):
        path = os.path.join(workdir, stale)
        if os.path.exists(path):
            os.remove(path)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(["xtb", "frame.xyz", "--gfn", "2", "--grad", "--acc", "0.01"],
                            cwd=workdir, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        return None
    with open(os.path.join(workdir, "gradient")) as handle:
        lines = handle.read().splitlines()
    energy = float(lines[1].split("SCF energy =")[1].split()[0]) * HARTREE_EV
    n = len(atoms)
    gradient = [[float(v.replace("D", "E")) for v in line.split()] for line in lines[2 + n:2 + 2 * n]]
    forces = [[-g * HARTREE_EV / BOHR_A for g in row] for row in gradient]
    return energy, forces


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--max-bond-stretch", type=float)
    parser.add_argument("--reference")
    args = parser.parse_args()
    frames = read_frames(args.input)[::args.every]
    check = None
    if args.max_bond_stretch is not None:
        if not args.reference:
            sys.exit("--max-bond-stretch needs --reference")
        check = bonds_and_means(read_frames(args.reference))
    written = skipped = failed = 0
    with tempfile.TemporaryDirectory() as workdir, open(args.output + ".partial", "w") as out:
        for atoms in frames:
            if check:
                pairs, means = check
                if any(math.dist(atoms[a][1], atoms[b][1]) - m > args.max_bond_stretch
                       for (a, b), m in zip(pairs, means)):
                    skipped += 1
                    continue
            labelled = label(atoms, workdir)
            if labelled is None:
                failed += 1
                continue
            energy, forces = labelled
            masses = [MASSES[s] for s, _ in atoms]
            total = sum(masses)
            com = [sum(m * p[k] for m, (_, p) in zip(masses, atoms)) / total for k in range(3)]
            out.write(f"{len(atoms)}\n")
            out.write(f'Properties=species:S:1:pos:R:3:forces:R:3 energy={energy!r} pbc="F F F"\n')
            for (symbol, p), f in zip(atoms, forces):
                out.write(f"{symbol:2s} " + " ".join(f"{p[k] - com[k]:16.8f}" for k in range(3))
                          + " " + " ".join(f"{f[k]:16.8f}" for k in range(3)) + "\n")
            written += 1
    os.replace(args.output + ".partial", args.output)
    print(f"{args.output}: {written} frames labelled, {skipped} skipped (bond stretch), {failed} failed")


if __name__ == "__main__":
    main()
