"""``extra-cot compress --ray``: the same per-row step (``extra_cot.compress.rows``) on Ray Data.

The driver reads the input and drops rows already written (resume), builds a Ray dataset of
``{line, row}`` items, and ``map_batches`` them through an actor pool whose actors each load the
scorer once (``--num-workers`` actors, ``--num-gpus-per-worker`` GPUs each). Results come back
in input order (``preserve_order``) and the driver appends them to OUT / OUT.skipped.jsonl with
the same writer as the single-process path, so both paths write the same bytes and a crash loses
at most the rows still in flight.

Connection: ``ray.init()`` with no address resolves ``RAY_ADDRESS``, then the cluster of the
latest ``ray start`` on this machine, else starts a local cluster (Ray's own rule). Every node must be
able to import ``extra_cot``: installed there, or shipped with ``--runtime-env`` (Ray's runtime_env:
``py_modules``, ``pip``, ...); a worker that cannot import it stops the run with
:class:`RayNodeSetupError`, which names that fix.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

from extra_cot.cliargs import option
from extra_cot.compress.rows import RowCompressor, RowJob

logger = logging.getLogger(__name__)

#: --help group of the Ray flags (``extra-cot compress``).
GROUP = "Ray Data (scale-out; the output is the same as without --ray)"


@dataclass(frozen=True)
class RayOptions:
    """How the rows are spread: actors, GPUs per actor, rows per ``map_batches`` call."""

    num_workers: int = option(default=1, group=GROUP, help="scorer actors (one model copy each)")
    num_gpus_per_worker: float = option(default=0.0, group=GROUP, help="GPUs per actor (0 on CPU)")
    batch_size: int = option(default=16, group=GROUP, help="rows per map_batches call")
    runtime_env: str | None = option(
        default=None, group=GROUP, metavar="JSON|FILE",
        help="Ray runtime_env of the job (ray.init), as JSON or a .json/.yaml file, e.g. "
             "'{\"pip\": [\"extra-cot[compress]==VERSION\"]}' or '{\"py_modules\": [\"/src/extra-cot/plugins/extra_cot\"]}'. "
             "Default none: every node must have extra-cot[compress] installed")

    def __post_init__(self) -> None:
        if self.num_workers < 1 or self.batch_size < 1 or self.num_gpus_per_worker < 0:
            raise ValueError(f"need --num-workers >= 1, --batch-size >= 1, --num-gpus-per-worker >= 0; got {self}")
        self.runtime_env_dict()  # a bad value fails before any work

    def runtime_env_dict(self) -> dict | None:
        """``--runtime-env`` parsed: inline JSON, or a JSON/YAML file; a clear error names what is wrong."""
        if not self.runtime_env:
            return None
        from pathlib import Path

        text, where = self.runtime_env, "--runtime-env"
        if not text.lstrip().startswith("{"):
            path = Path(text)
            if not path.is_file():
                raise ValueError(f"--runtime-env {text!r}: neither inline JSON (starting with '{{') nor a file")
            text, where = path.read_text(encoding="utf-8"), f"--runtime-env file {path}"
        try:
            import yaml

            value = yaml.safe_load(text)  # YAML is a superset of JSON
        except yaml.YAMLError as exc:
            raise ValueError(f"{where}: not valid JSON/YAML ({exc})") from exc
        if not isinstance(value, dict):
            raise ValueError(f"{where}: a runtime_env is a mapping (e.g. {{\"pip\": [...]}}), got {type(value).__name__}")  # noqa: TRY004 (bad input value, as argparse reports)
        return value


class ScorerActor:
    """One Ray actor: a :class:`RowCompressor` applied to a batch of rows (scored together)."""

    def __init__(self, job: RowJob) -> None:
        self.compressor = RowCompressor(job)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        outcomes = self.compressor.batch([(int(n), json.loads(text)) for n, text in zip(batch["line"], batch["row"])])
        kinds = [kind for kind, _ in outcomes]
        records = [json.dumps(record, ensure_ascii=False) for _, record in outcomes]
        return {"kind": np.array(kinds, dtype=object), "record": np.array(records, dtype=object)}


#: What a worker on a node without the package reports (the actor class is pickled by reference).
_MISSING_PACKAGE = "No module named 'extra_cot'"


class RayNodeSetupError(RuntimeError):
    """A Ray worker could not import extra-cot: the node lacks the package and no runtime_env ships it."""


def connect(runtime_env: dict | None = None) -> None:
    """Join the cluster Ray users expect (see the module docstring); reuse one already joined."""
    import ray

    if not ray.is_initialized():
        ray.init(runtime_env=runtime_env)
    elif runtime_env:
        raise ValueError("--runtime-env needs a fresh Ray connection, but this process already joined a cluster "
                         "(ray.init ran before): pass the runtime_env to that ray.init instead")
    logger.info("Ray cluster resources: %s", ray.cluster_resources())


def explain_worker_error(exc: BaseException) -> BaseException:
    """A worker that cannot import extra-cot -> :class:`RayNodeSetupError` naming the fix; else ``exc``."""
    if _MISSING_PACKAGE in str(exc):
        return RayNodeSetupError(
            "a Ray worker could not import extra_cot: a node of the cluster lacks the package. Fix: install "
            "extra-cot[compress] on every node, or ship it with "
            "--runtime-env '{\"py_modules\": [\"/path/to/plugins/extra_cot\"]}' (or '{\"pip\": [...]}'). "
            f"Ray said: {str(exc).strip().splitlines()[-1]}")
    return exc


def ray_outcomes(job: RowJob, todo: list[tuple[int, dict]], options: RayOptions) -> Iterator[tuple[str, dict]]:
    """``(kind, record)`` of each ``(line, row)`` in ``todo``, in order, computed by the actor pool."""
    if not todo:
        return
    import ray.data

    connect(options.runtime_env_dict())
    ray.data.DataContext.get_current().execution_options.preserve_order = True  # same order as one process
    items = [{"line": n, "row": json.dumps(row, ensure_ascii=False)} for n, row in todo]
    # one block per batch, so every actor gets work from the start
    ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / options.batch_size))
    ds = ds.map_batches(
        ScorerActor,
        fn_constructor_args=(job,),
        compute=ray.data.ActorPoolStrategy(size=options.num_workers),
        num_gpus=options.num_gpus_per_worker or None,
        batch_size=options.batch_size,
        batch_format="numpy",
    )
    try:
        for row in ds.iter_rows():
            yield str(row["kind"]), json.loads(row["record"])
    except Exception as exc:  # Ray wraps worker errors in its own exception types
        explained = explain_worker_error(exc)
        if explained is exc:
            raise
        raise explained from exc
