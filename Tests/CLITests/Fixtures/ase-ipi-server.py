"""ASE's own i-PI server (ase.calculators.socketio.SocketIOCalculator), for
SocketPotentialASETests: python3 ase-ipi-server.py STRUCTURE SOCKET_NAME RESULT.json

Asks the connected client (eninet-md ipi-client) for the energy and forces of the structure,
then of the structure with its first atom moved, and writes both."""
import json
import sys

from ase.calculators.socketio import SocketIOCalculator
from ase.io import read

structure, name, result = sys.argv[1:4]
atoms = read(structure)
answers = []
with SocketIOCalculator(unixsocket=name, timeout=60) as calc:
    atoms.calc = calc
    for _ in range(2):
        answers.append({"energy": atoms.get_potential_energy(), "forces": atoms.get_forces().tolist()})
        atoms.positions[0] += [0.05, -0.02, 0.01]
with open(result, "w") as out:
    json.dump(answers, out)
