"""The engine-neutral description of a hybrid loop, and the DAG it becomes.

A ``HybridLoop`` states the loop the way a lab writes it::

    state = initial_state()
    for i in 1..iterations:
        measured = quantum_step(state, qpu)       # holds the device
        state = classical_step(state, measured)   # does not
        if converged(state): break

``build_dag`` turns it into nodes: ``init``, then per iteration a quantum node ``qNNNN``
and a classical node ``cNNNN``, each reading and writing checkpoint artifacts. Engines
(embedded, SLURM, Snakemake, Parsl) run the same nodes through ``run_node``.

``build_dag(loop, fused=True)`` makes one node per iteration instead, ``qcNNNN`` (the first
paper's J_ij = C_ij + Q_ij in one job): it runs ``qNNNN`` and then ``cNNNN`` in one process,
ending its hold on the device before the classical step starts (on SLURM: the qpu component is
cancelled, component 0 goes on), so an iteration costs one job instead of two. It writes the
same checkpoints and logs the same events under the same names as the two nodes it fuses, so
both forms resume from each other's checkpoints and reach the same state for the same seed.

The DAG is static (``iterations`` is the bound); once ``converged`` holds, later nodes
pass the state through without touching the device, so engines never need dynamic DAGs.

Every engine resumes through ``node_done`` and ``run_node``, which accept a checkpoint only
at its place: this workflow, the node's own file, and this run's fingerprint (the loop's
import path and parameters, see ``load_loop``). A copied, swapped or rolled-back checkpoint,
or one left by a run with other parameters, stops the run with ``CheckpointMismatch``
instead of being resumed from.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hcqw.checkpoint import Place, load_checkpoint, read_header, save_checkpoint
from hcqw.errors import WorkflowError
from hcqw.paths import quantum_file, run_checkpoints, run_metrics, state_file
from hcqw.trust import require_private, untrusted_reason

if TYPE_CHECKING:  # the device contract only types the steps; job scripts need not import numpy for it
    from hcqw.device.provider import DeviceLease, DeviceProvider

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HybridLoop:
    """A hybrid loop: alternate a quantum step (holds the device) and a classical step (does not).

    Attributes:
        name: the loop's name (a run's default workflow id).
        initial_state: makes the state before the first iteration.
        quantum_step: ``(state, qpu) -> measured``; ``qpu`` is the device lease, held only during this step.
        classical_step: ``(state, measured) -> state``: the next iteration's state.
        iterations: how many iterations at most (a positive int).
        converged: ``state -> bool``; True ends the loop early.
        seed: makes device sampling reproducible on every engine.
        describe: ``state -> str``: one progress line per iteration.
        fingerprint: binds the run's checkpoints to this loop definition (set by ``load_loop``).
    """

    name: str
    initial_state: Callable[[], Any]
    quantum_step: Callable[[Any, DeviceLease], Any]
    classical_step: Callable[[Any, Any], Any]
    iterations: int
    converged: Callable[[Any], bool] | None = None
    seed: int | None = None  # makes device sampling reproducible on every engine (see node_seed)
    describe: Callable[[Any], str] | None = None  # one progress line per iteration, e.g. "energy -4.75"
    # Binds the run's checkpoints to this loop definition. ``load_loop`` sets it from the import path and
    # parameters; a loop built in Python gets one from its name, iterations and seed (closures cannot be
    # fingerprinted reliably), so give it a fingerprint of what it was built from if that matters.
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise WorkflowError(f"loop {self.name!r}: iterations must be a positive int, got {self.iterations!r}")
        for field_name in ("initial_state", "quantum_step", "classical_step"):
            if not callable(getattr(self, field_name)):
                raise WorkflowError(f"loop {self.name!r}: {field_name} must be callable")
        if not self.fingerprint:
            own = run_fingerprint(f"loop:{self.name}", {"iterations": self.iterations, "seed": self.seed})
            object.__setattr__(self, "fingerprint", own)


class NodeKind(str, enum.Enum):
    QUANTUM = "quantum"
    CLASSICAL = "classical"
    FUSED = "fused"  # a quantum node and the classical node after it, in one job (``Node.parts``)


@dataclass(frozen=True)
class Node:
    name: str
    kind: NodeKind
    iteration: int
    inputs: tuple[str, ...]  # checkpoint file names, relative to the run's checkpoint directory
    output: str
    after: tuple[str, ...]  # names of the nodes that must finish first
    fingerprint: str = ""  # the loop's (HybridLoop.fingerprint): which run this node's checkpoints belong to
    parts: tuple["Node", ...] = ()  # a fused node's quantum and classical node, run in this order

    @property
    def uses_qpu(self) -> bool:
        """Whether the node needs the device (engines: a hetjob with a qpu component, a ``qpu`` executor)."""
        return self.kind in (NodeKind.QUANTUM, NodeKind.FUSED)


def build_dag(loop: HybridLoop, fused: bool = False) -> list[Node]:
    """Nodes in a valid execution order; with ``fused`` one ``qcNNNN`` node per iteration (see the module)."""
    run = loop.fingerprint
    nodes = [Node("init", NodeKind.CLASSICAL, 0, (), state_file(0), (), run)]
    previous = "init"
    for i in range(1, loop.iterations + 1):
        q, c = f"q{i:04d}", f"c{i:04d}"
        quantum = Node(q, NodeKind.QUANTUM, i, (state_file(i - 1),), quantum_file(i), (previous,), run)
        classical = Node(c, NodeKind.CLASSICAL, i, (state_file(i - 1), quantum_file(i)), state_file(i), (q,), run)
        if fused:
            name = fused_name(i)
            nodes.append(Node(name, NodeKind.FUSED, i, quantum.inputs, classical.output, (previous,), run,
                              (quantum, classical)))
            previous = name
        else:
            nodes += [quantum, classical]
            previous = c
    return nodes


def dag_to_resume(loop: HybridLoop, ctx: "RunContext", fused: bool = False) -> list[Node]:
    """``build_dag(loop, fused)`` for a run that may have started: a fused iteration whose quantum checkpoint
    is there but not its state (its job died in the classical step) becomes its classical node alone -- nothing
    is left for the device -- and the node after it waits for that one."""
    nodes: list[Node] = []
    renamed: dict[str, str] = {}
    for node in build_dag(loop, fused):
        node = dataclasses.replace(node, after=tuple(renamed.get(a, a) for a in node.after))
        if node.kind is NodeKind.FUSED and not node_done(node, ctx) and node_done(node.parts[0], ctx):
            classical = dataclasses.replace(node.parts[1], after=node.after)
            renamed[node.name] = classical.name
            node = classical
        nodes.append(node)
    return nodes


def fused_name(iteration: int) -> str:
    return f"qc{iteration:04d}"


def node_parts(name: str) -> tuple[str, ...]:
    """The node names whose events a job named ``name`` logs: a fused node's two parts, else itself."""
    if name.startswith("qc") and name[2:].isdigit():
        return f"q{name[2:]}", f"c{name[2:]}"
    return (name,)


@dataclass(frozen=True)
class RunContext:
    """Where a workflow run keeps its checkpoints and metrics."""

    workflow: str
    run_dir: Path

    @property
    def checkpoints(self) -> Path:
        return run_checkpoints(self.run_dir)

    @property
    def metrics_path(self) -> Path:
        return run_metrics(self.run_dir)

    def path(self, name: str) -> Path:
        return self.checkpoints / name

    def place(self, fingerprint: str) -> Place:
        """What this run's checkpoints must say about where they belong."""
        return Place(self.workflow, fingerprint)


def run_node(loop: HybridLoop, node: Node, ctx: RunContext, device: DeviceProvider | None,
             device_timeout: float | None = None, release: Callable[[], None] | None = None) -> None:
    """Run one node: read its input checkpoints, compute, write its output checkpoint.

    A quantum node holds the device only inside ``quantum_step``; its checkpoint is
    written after the device has been released. Besides the device's ``hold``/``exec``
    events, the run's metrics log gets a ``ready`` event when a quantum node starts to
    acquire (its wait for the device follows) and a ``cpu`` interval per classical node,
    so ``hcqw report`` accounts waits and classical work on every engine.

    A fused node runs its quantum part (unless its checkpoint is there already: a resume after
    the job died in the classical part), calls ``release`` -- a SLURM node frees its qpu
    component there also when no block ran -- and then its classical part.
    """
    from hcqw.metrics import MetricsLog

    if node.kind is NodeKind.FUSED:
        quantum, classical = node.parts
        if not node_done(quantum, ctx):
            run_node(loop, quantum, ctx, device, device_timeout)
        if release is not None:
            release()
        run_node(loop, classical, ctx, None)
        return
    started = time.time()
    metrics = MetricsLog(ctx.metrics_path)
    place = ctx.place(node.fingerprint)
    save = lambda obj, meta: save_checkpoint(  # noqa: E731
        ctx.path(node.output), obj, workflow=ctx.workflow, iteration=node.iteration, producer=node.name, meta=meta,
        fingerprint=node.fingerprint,
    )
    if node.name == "init":
        save(loop.initial_state(), {"converged": False})
        return
    state, state_header = load_checkpoint(ctx.path(node.inputs[0]), place=place)
    converged = bool(state_header.meta.get("converged"))
    if node.kind is NodeKind.QUANTUM:
        if converged:
            save(None, {"skipped": True})
            return
        if device is None:
            raise WorkflowError(f"{ctx.workflow}/{node.name} is a quantum node but no device was given")
        metrics.record("ready", workflow=ctx.workflow, node=node.name, start=time.time())
        with device.acquire(ctx.workflow, node.name, timeout=device_timeout, metrics=metrics,
                            seed=node_seed(loop, node.name)) as qpu:
            measured = loop.quantum_step(state, qpu)
        save(measured, {})
        return
    if converged:
        save(state, {"converged": True, "passed_through": True})
        return
    measured, _ = load_checkpoint(ctx.path(node.inputs[1]), place=place)
    new_state = loop.classical_step(state, measured)
    done = bool(loop.converged(new_state)) if loop.converged else False
    meta = {"converged": done}
    if loop.describe:
        meta["summary"] = loop.describe(new_state)
        log.info("%s iteration %d/%d: %s", ctx.workflow, node.iteration, loop.iterations, meta["summary"])
    save(new_state, meta)
    metrics.record("cpu", workflow=ctx.workflow, node=node.name, start=started, end=time.time())


def node_done(node: Node, ctx: RunContext) -> bool:
    """Whether ``node`` already ran: its output checkpoint exists, verifies and is in its place. Every engine
    resumes with this.

    A corrupt or foreign checkpoint raises ``CheckpointError``, a misplaced one (copied, swapped, rolled back,
    or from a run with other parameters) ``CheckpointMismatch``: the run stops loudly instead of mixing it in
    or overwriting it."""
    path = ctx.path(node.output)
    if not path.exists():
        return False
    read_header(path, place=ctx.place(node.fingerprint))
    return True


def node_seed(loop: HybridLoop, node: str) -> int | None:
    """The device seed of one node: fixed by the loop's seed and the node's name, nothing else."""
    if loop.seed is None:
        return None
    digest = hashlib.sha256(f"{loop.seed}:{node}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def run_fingerprint(reference: str, params: dict | None) -> str:
    """A short fingerprint of a loop definition: its import path and parameters (as the JSON jobs get)."""
    canonical = json.dumps({"loop": reference, "params": params or {}}, sort_keys=True, separators=(",", ":"),
                           default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def use_module_dir(directory: Path | str | None = None) -> Path | None:
    """Put the directory of the user's loop module first on ``sys.path``, as ``python -m`` would there:
    ``directory`` (``--path``; ``UntrustedPath`` unless private to the user, root's parents allowed) or,
    by default, the working directory if it is private. A shared working directory is not used (a
    planted ``hcqw/`` there would run as the user); ``load_loop`` then says what to set if the module
    is only there. Returns the directory used, to pass on to jobs (``NodeJobSettings.module_path``)."""
    if directory is not None:
        path = Path(directory).absolute()
        require_private(path, "module directory", "Keep your pipeline in a directory only you may write (e.g. "
                        "your home) and give that (--path DIR or PYTHONPATH)", owner_only=False)
    else:
        path = Path.cwd()
        if untrusted_reason(path, owner_only=False):
            return None
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    return path


def load_loop(reference: str, params: dict | None = None) -> HybridLoop:
    """Import a loop from ``"package.module:attr"``; ``attr`` is a HybridLoop or a factory taking ``params``.

    Job scripts on other nodes rebuild the loop this way, so the definition travels as
    an import path plus JSON parameters, never as a pickle; both make its fingerprint.
    """
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise WorkflowError(f"loop reference {reference!r} must look like 'package.module:attribute'")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise WorkflowError(f"cannot import loop {reference!r}: {err}{_not_imported_from_cwd(module_name)}") from None
    if isinstance(target, HybridLoop):
        if params:
            raise WorkflowError(f"{reference!r} is a HybridLoop, not a factory; it takes no parameters")
        return dataclasses.replace(target, fingerprint=run_fingerprint(reference, {}))
    loop = target(**(params or {}))
    if not isinstance(loop, HybridLoop):
        raise WorkflowError(f"{reference!r} gave {type(loop).__name__}, not a HybridLoop")
    return dataclasses.replace(loop, fingerprint=run_fingerprint(reference, params))


def _not_imported_from_cwd(module_name: str) -> str:
    """Why the module in the working directory was not imported (it is not private), if it is there."""
    cwd, top = Path.cwd(), module_name.split(".")[0]
    if str(cwd) in sys.path or not ((cwd / f"{top}.py").is_file() or (cwd / top).is_dir()):
        return ""
    reason = untrusted_reason(cwd, owner_only=False)
    if not reason:
        return (f". {top} is in the working directory {cwd}; give it with --path {cwd} or "
                f"PYTHONPATH={cwd}")
    return (f". {top} is in the working directory {cwd}, which hcqw does not import from: {reason}, so another "
            f"user could plant modules there. Move your pipeline to a directory only you may write (e.g. your "
            f"home) and run from there, or give such a directory with --path DIR or PYTHONPATH")


def node_named(loop: HybridLoop, name: str) -> Node:
    """The node of ``loop`` called ``name``; ``WorkflowError`` naming the nodes there are if none is."""
    nodes = {n.name: n for fused in (False, True) for n in build_dag(loop, fused)}  # split and fused names
    if name not in nodes:
        last = loop.iterations
        raise WorkflowError(f"loop {loop.name!r} has no node {name!r}: its nodes are init, then q0001/c0001 to "
                            f"q{last:04d}/c{last:04d} (fused: qc0001 to qc{last:04d})")
    return nodes[name]


def run_node_by_name(loop_ref: str, params: dict | None, node_name: str, ctx: RunContext,
                     device: Callable[[], DeviceProvider]) -> Node:
    """Rebuild the loop from its import path and parameters (``load_loop``, never unpickled) and run
    one node of it: what an engine's job or app does. ``device`` is called for a node that uses the QPU only,
    giving the device of wherever the node runs; a fused node gives a device that can ``release`` itself
    back before its classical step (a gateway's, a held local one) even if its quantum part had nothing to
    run. Returns the node (its ``output`` is the checkpoint)."""
    loop = load_loop(loop_ref, params)
    node = node_named(loop, node_name)
    provider = device() if node.uses_qpu else None
    run_node(loop, node, ctx, provider, release=getattr(provider, "release", None))
    return node
