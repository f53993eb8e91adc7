#!/usr/bin/env python3
"""Convert an official ENINet checkpoint into an eninet-md model file.

The output is a safetensors file holding the network's tensors under their reference names
(`conv_layers.*`, `readout.*`) and, in its `__metadata__` under `eninet_config`, the model
configuration in eninet-md's own layout (see Docs/model-files.md). The reference options are
recorded explicitly (mean or sum aggregation as trained, max_min vector norm, 32-neighbour cap,
atom-index line-graph rule, no bond cutoffs on triplets) so that the file reproduces the
reference network's numbers.

Inputs:
  * a PyTorch Lightning checkpoint (.ckpt; needs `torch` to unpickle), or
  * a reference export: a .safetensors state dict with a JSON of the layout of
    shared/eninet-reference/*.json beside it (`hyper_parameters`, `scaler`, `rbf`); needs only numpy.

Usage:
  convert-lightning-checkpoint.py model.ckpt out.safetensors [--mean M --std S] [--max-neighbors 32]
      [--species H,C,N,O,F] [--energy-unit kcal/mol]
  convert-lightning-checkpoint.py eninet-small.safetensors out.safetensors

eninet-md works in eV and Å. A checkpoint trained on energies in another unit (MD17 in kcal/mol,
say) is converted with --energy-unit: the scaler's mean and std, which carry the unit of every
energy the network outputs, are multiplied by the unit's size in eV. Lengths must be in Å.
With --species the file records the elements the model was trained on, and eninet-md refuses
structures with any other (their embedding rows were never trained).

This script is an optional helper; eninet-md itself never runs Python.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

# The size of each accepted energy unit in eV (CODATA 2018: e, N_A, the thermochemical calorie, E_h).
ENERGY_UNITS_IN_EV = {"eV": 1.0, "meV": 1e-3, "kcal/mol": 4184.0 / 96485.33212, "kJ/mol": 1000.0 / 96485.33212,
                      "Hartree": 27.211386245988}

# Element symbols by atomic number (index 0 unused), up to the reference's 95-row embedding table.
SYMBOLS = ("X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
           "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb "
           "Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu").split()

DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64",
          np.dtype(np.int32): "I32", np.dtype(np.float16): "F16", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL"}
NUMPY = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "F16": np.float16, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[8 + n + begin:8 + n + end], dtype=NUMPY[entry["dtype"]]).reshape(entry["shape"]).copy()
    return tensors, metadata


def write_safetensors(path, tensors, metadata):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        array = np.array(tensors[name], order="C", copy=True)  # ascontiguousarray would turn scalars into [1]
        blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": DTYPES[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    header["__metadata__"] = metadata
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    temporary = path + ".tmp"
    with open(temporary, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)
    os.replace(temporary, path)


def float32_gamma(centres):
    """gamma = 1 / mean(diff(centres)) in float32, as the reference's GaussianRBF computes it.

    PyTorch's float32 reduction order is not reproduced exactly: for some sizes (the 'small'
    test model) the result is 1 ulp off (8e-8 relative). Reference exports carry the exact
    value (`rbf.*.gamma_float32`), and --gamma-twobody/--gamma-threebody override it."""
    c = np.asarray(centres, dtype=np.float32)
    return float(np.float32(1) / np.mean(np.diff(c), dtype=np.float32))


def configuration(hyper, mean, std, gamma2, gamma3, max_neighbors):
    aggregation = hyper.get("g_aggregation", "mean")
    if aggregation not in ("sum", "mean"):
        sys.exit(f"unsupported g_aggregation '{aggregation}'")
    return {
        "format": "eninet-md/1",
        "n_elements": int(hyper.get("n_elements", 95)),
        "g_feat_dim": int(hyper["g_feat_dim"]),
        "lg_feat_dim": int(hyper["lg_feat_dim"]),
        "n_rbf": int(hyper["n_rbf"]),
        "cutoff": float(hyper["cutoff"]),
        "n_interactions": int(hyper["n_interactions"]),
        "rbf_gamma": {"twobody": float(gamma2), "threebody": float(gamma3)},
        "scaler": {"mean": float(mean), "std": float(std)},
        "aggregation": aggregation,
        "average_neighbor_count": 1.0,
        "vector_norm": "max_min",
        "vector_norm_epsilon": 0.0,
        "max_neighbors": max_neighbors,
        "line_graph_rule": "atom_index",
        "triplet_bond_cutoff": False,
        "target": "energy",
    }


def network_tensors(state):
    """Keep conv_layers.* and readout.* (dropping a Lightning prefix such as 'model.'), as float arrays."""
    out = {}
    for name, value in state.items():
        for root in ("conv_layers.", "readout."):
            k = name.find(root)
            if k >= 0 and (k == 0 or name[k - 1] == "."):
                array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
                out[name[k:]] = array
                break
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--mean", type=float, help="per-atom energy mean of the scaler (overrides the checkpoint)")
    parser.add_argument("--std", type=float, help="per-atom energy standard deviation of the scaler")
    parser.add_argument("--gamma-twobody", type=float, help="exact float32 gamma of the two-body RBF")
    parser.add_argument("--gamma-threebody", type=float, help="exact float32 gamma of the three-body RBF")
    parser.add_argument("--max-neighbors", type=int, default=32, help="neighbour cap the model was trained with (0: none)")
    parser.add_argument("--species", help="comma-separated element symbols the model was trained on (H,C,N,O,F)")
    parser.add_argument("--energy-unit", default="eV", choices=sorted(ENERGY_UNITS_IN_EV),
                        help="energy unit of the training data (default eV); the scaler is converted to eV")
    args = parser.parse_args()
    species = []
    for name in (args.species or "").split(","):
        name = name.strip()
        if not name:
            continue
        if name not in SYMBOLS[1:]:
            sys.exit(f"--species: '{name}' is not an element symbol (H to Pu)")
        if name in species:
            sys.exit(f"--species: {name} is listed twice")
        species.append(name)

    if args.input.endswith(".safetensors"):
        tensors, _ = read_safetensors(args.input)
        sidecar = args.input[: -len(".safetensors")] + ".json"
        with open(sidecar) as f:
            reference = json.load(f)
        hyper = reference["hyper_parameters"]
        scaler = reference.get("scaler", {})
        gammas = (reference["rbf"]["twobody"]["gamma_float32"], reference["rbf"]["threebody"]["gamma_float32"])
        mean = args.mean if args.mean is not None else scaler.get("mean_float32", scaler.get("mean"))
        std = args.std if args.std is not None else scaler.get("std_float32", scaler.get("std"))
    else:
        try:
            import torch
        except ImportError:
            sys.exit("reading a .ckpt needs PyTorch (pip install torch)")
        checkpoint = torch.load(args.input, map_location="cpu", weights_only=False)
        hyper = dict(checkpoint.get("hyper_parameters", {}))
        state = checkpoint.get("state_dict", checkpoint)
        tensors = network_tensors(state)
        gammas = (float32_gamma(tensors["conv_layers.twobody_dist_rb.centers"]),
                  float32_gamma(tensors["conv_layers.threebody_dist_rb.centers"]))
        scaler_keys = {k: v for k, v in state.items() if "scaler" in k}
        mean, std = args.mean, args.std
        for k, v in scaler_keys.items():
            if mean is None and k.endswith("mean"):
                mean = float(v.reshape(-1)[0])
            if std is None and k.endswith("std"):
                std = float(v.reshape(-1)[0])
    if mean is None or std is None:
        sys.exit("no scaler mean/std found: pass --mean and --std")
    for key in ("g_feat_dim", "lg_feat_dim", "n_rbf", "cutoff", "n_interactions"):
        if key not in hyper:
            sys.exit(f"hyper-parameter '{key}' missing from the checkpoint")
    gamma2 = args.gamma_twobody if args.gamma_twobody is not None else gammas[0]
    gamma3 = args.gamma_threebody if args.gamma_threebody is not None else gammas[1]
    unit = ENERGY_UNITS_IN_EV[args.energy_unit]
    config = configuration(hyper, mean * unit, std * unit, gamma2, gamma3, args.max_neighbors if args.max_neighbors > 0 else None)
    for name in species:
        if SYMBOLS.index(name) >= config["n_elements"]:
            sys.exit(f"--species: {name} has no row in the model's embedding table of {config['n_elements']}")
    config["units"] = {"energy": "eV", "length": "angstrom"}
    if species:
        config["species"] = sorted(species, key=SYMBOLS.index)
    config["provenance"] = {"program": "convert-lightning-checkpoint.py", "converted_from": os.path.basename(args.input),
                            "source_energy_unit": args.energy_unit}
    write_safetensors(args.output, tensors, {"eninet_config": json.dumps(config, sort_keys=True)})
    print(f"wrote {len(tensors)} tensors to {args.output} (gamma {config['rbf_gamma']['twobody']}, {config['rbf_gamma']['threebody']})")


if __name__ == "__main__":
    main()
