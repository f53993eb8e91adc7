"""ASE's own i-PI client (ase.calculators.socketio.SocketClient) with ASE's EMT, for
SocketPotentialASETests: python3 ase-ipi-client.py STRUCTURE SOCKET_NAME ANSWERS.jsonl

Each answer ASE computed is written as a JSON line (energy eV, forces eV/A, stress eV/A^3,
the cell and positions it was sent), for the test to compare with what eninet-md logged."""
import json
import sys
import time

from ase.calculators.emt import EMT
from ase.calculators.socketio import SocketClient
from ase.io import read

structure, name, answers = sys.argv[1:4]
atoms = read(structure)
atoms.calc = EMT()
deadline = time.time() + 30
while True:
    try:
        client = SocketClient(unixsocket=name)
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.05)
with open(answers, "w") as out:
    for _ in client.irun(atoms, use_stress=True):
        out.write(json.dumps({"energy": atoms.get_potential_energy(), "forces": atoms.get_forces().tolist(),
                              "stress": atoms.get_stress(voigt=False).tolist(), "cell": atoms.cell[:].tolist(),
                              "positions": atoms.positions.tolist()}) + "\n")
        out.flush()
