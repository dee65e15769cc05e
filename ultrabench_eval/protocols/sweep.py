"""A sweep of models x tasks on a cluster: one submitit job per model, each running the bench
for that model on every task, all writing into the shared cache and results folder.

`executor="slurm"` submits to Slurm; `executor="local"` runs the same jobs as local processes
(what the tests use, and handy on a workstation)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.data.task_card import TaskCard
from ultrabench_eval.protocols import bench
from ultrabench_eval.protocols.config import BenchConfig


@dataclass(frozen=True)
class ClusterOptions:
    partition: str | None = None
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 64
    timeout_min: int = 240
    account: str | None = None


def run_model(config: BenchConfig, cards: list[TaskCard] | None = None) -> list[dict[str, Any]]:
    """The job: the bench for one model (records are written by the job itself). `cards`: the
    ones the submitting process registered at run time (a Hugging Face dataset's, from
    `--data`), which the job's own registry would not know."""
    for card in cards or []:
        TASKS.register(card.name, card, replace=True)
    records = bench.run(config, log=print)
    return [
        {
            "model": r.model_name,
            "task": r.task_name,
            "protocol": r.protocol_id,
            "mean": r.scores.mean,
            "std": r.scores.std,
        }
        for r in records
    ]


def submit(
    config: BenchConfig,
    log_dir: Path,
    executor: str = "slurm",
    cluster: ClusterOptions | None = None,
) -> list[Any]:
    """Submit one job per model of `config`; returns the submitit jobs."""
    import submitit

    cluster = cluster or ClusterOptions()
    if executor == "local":
        runner = submitit.LocalExecutor(folder=str(log_dir))
        runner.update_parameters(timeout_min=cluster.timeout_min)
    elif executor == "slurm":
        if not _has_slurm():
            raise UserError(
                "no Slurm here (sbatch not found): use --executor local, or run "
                "the sweep from a Slurm login node"
            )
        runner = submitit.AutoExecutor(folder=str(log_dir), cluster="slurm")
        params: dict[str, Any] = {
            "timeout_min": cluster.timeout_min,
            "gpus_per_node": cluster.gpus_per_node,
            "cpus_per_task": cluster.cpus_per_task,
            "mem_gb": cluster.mem_gb,
            "slurm_job_name": "ubench",
        }
        if cluster.partition:
            params["slurm_partition"] = cluster.partition
        if cluster.account:
            params["slurm_account"] = cluster.account
        runner.update_parameters(**params)
    else:
        raise UserError(f"unknown executor '{executor}' (use slurm or local)")
    jobs = []
    cards = [TASKS.get(name) for name in config.tasks]
    cards = [card for card in cards if card.hf is not None]
    for model in config.models:
        # progress bars make no sense in a log file
        job_config = replace(config, models=[model], progress=False)
        jobs.append(runner.submit(run_model, job_config, cards))
    return jobs


def _has_slurm() -> bool:
    import shutil

    return shutil.which("sbatch") is not None
