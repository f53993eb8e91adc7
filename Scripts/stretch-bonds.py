#!/usr/bin/env python3
"""Configurations with one bond to hydrogen stretched, for training data beyond thermal sampling.

Optional helper (standard library only). A model trained on 500 K frames alone has never seen
an X-H bond more than about 0.2 A beyond its mean; in long MD it may find a path on which the
hydrogen leaves. These frames show it what stretching costs.

    Scripts/stretch-bonds.py DATA.extxyz SPLIT.json OUTPUT.xyz --count N [--seed S] [--min A] [--max A]

Takes training frames only (the `train` list of SPLIT), picks one bond to hydrogen at random
(a pair closer than 1.3 A in the frame) and moves the hydrogen outward along the bond by a
distance drawn uniformly from [--min, --max] (default 0.15 to 0.9 A). Label OUTPUT with
Scripts/xtb-label.py.
"""
import argparse
import json
import math
import random


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("split")
    parser.add_argument("output")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min", type=float, default=0.15)
    parser.add_argument("--max", type=float, default=0.9)
    args = parser.parse_args()
    with open(args.data) as handle:
        lines = handle.read().splitlines()
    frames, i = [], 0
    while i < len(lines):
        n = int(lines[i])
        frames.append([(l.split()[0], [float(x) for x in l.split()[1:4]]) for l in lines[i + 2:i + 2 + n]])
        i += 2 + n
    with open(args.split) as handle:
        train = json.load(handle)["train"]
    rng = random.Random(args.seed)
    with open(args.output, "w") as out:
        for _ in range(args.count):
            atoms = [(s, list(p)) for s, p in frames[rng.choice(train)]]
            bonds = [(a, h) for h in range(len(atoms)) if atoms[h][0] == "H"
                     for a in range(len(atoms)) if a != h and atoms[a][0] != "H" and math.dist(atoms[a][1], atoms[h][1]) < 1.3]
            a, h = rng.choice(bonds)
            length = math.dist(atoms[a][1], atoms[h][1])
            shift = rng.uniform(args.min, args.max)
            for k in range(3):
                atoms[h][1][k] += (atoms[h][1][k] - atoms[a][1][k]) / length * shift
            out.write(f"{len(atoms)}\nstretched {a}-{h} by {shift:.4f} A\n")
            for s, p in atoms:
                out.write(f"{s} {p[0]:.8f} {p[1]:.8f} {p[2]:.8f}\n")


if __name__ == "__main__":
    main()
