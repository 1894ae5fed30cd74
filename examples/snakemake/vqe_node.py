"""One step of the H2 VQE, run by the Snakefile's rules (``script: "vqe_node.py"``).

The loop's own functions (examples.vqe.pipeline) do the work: ``initial_state`` in rule
``init``, ``quantum_step`` in rule ``quantum`` -- inside ``open_qpu()``, the only place the
device is held -- and ``classical_step`` in rule ``classical``; rule ``iteration`` (the fused
form) does both, the classical step after the device is free again. State passes between the
rules as signed checkpoints, so an interrupted run resumes from the last finished one.
"""

from examples.vqe.pipeline import exact_ground_energy, make_loop
from hcqw.checkpoint import load_checkpoint, save_checkpoint
from hcqw.qpu import open_qpu
from hcqw.workflow import node_seed

smk = snakemake  # noqa: F821 - provided by Snakemake's script directive
cfg = smk.config
workflow = cfg["workflow"]
loop = make_loop(iterations=int(cfg["iterations"]), shots=int(cfg["shots"]), seed=int(cfg["seed"]))
rule = smk.rule
iteration = int(smk.wildcards.get("i", 0))


def save(path: str, obj, producer: str, **meta) -> None:
    save_checkpoint(path, obj, workflow=workflow, iteration=iteration, producer=producer, meta=meta)


def quantum(output: str):
    node = f"q{iteration:04d}"
    state, _ = load_checkpoint(smk.input.state, workflow=workflow)
    # Seeded like the embedded engine's node of the same name: every engine samples alike.
    with open_qpu(node=node, seed=node_seed(loop, node)) as qpu:
        measured = loop.quantum_step(state, qpu)
    save(output, measured, node)  # after the device is released
    return state, measured


def classical(state, measured, output: str) -> None:
    new_state = loop.classical_step(state, measured)
    summary = loop.describe(new_state)
    print(f"iteration {iteration}: {summary}")
    save(output, new_state, f"c{iteration:04d}", summary=summary)


if rule == "init":
    save(smk.output[0], loop.initial_state(), "init")
elif rule == "quantum":
    quantum(smk.output[0])
elif rule == "classical":
    state, _ = load_checkpoint(smk.input.state, workflow=workflow)
    measured, _ = load_checkpoint(smk.input.measured, workflow=workflow)
    classical(state, measured, smk.output[0])
elif rule == "iteration":  # fused: the device is free again before the classical step
    classical(*quantum(smk.output.quantum), smk.output.state)
elif rule == "energy":
    state, _ = load_checkpoint(smk.input.state, workflow=workflow)
    energy, exact = state.energy, exact_ground_energy()
    with open(smk.output[0], "w") as out:
        out.write(f"energy {energy:.8f}\nexact {exact:.8f}\nerror {abs(energy - exact):.8f}\n")
else:
    raise ValueError(f"vqe_node.py has no step for rule {rule!r}")
