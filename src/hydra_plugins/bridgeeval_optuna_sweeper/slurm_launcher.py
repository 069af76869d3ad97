"""Hydra plugin shell: submitit's SLURM launcher, with batches that can be followed job by job.

``hydra/launcher=slurm`` selects it (``conf/hydra/launcher/slurm.yaml``). ``submit`` returns the
submitted jobs; the bridgeeval sweeper follows them with a ``bridgeeval.sweeps.slurm.Follower`` so
that each trial is told as its job ends, its slot takes the next trial at once, a lost job requeues
only its own trial, and an interrupted sweep cancels what it submitted. ``launch`` (plain multiruns) does the same and returns one
``JobReturn`` per job, a failed one for a job that ended without a result.
No ``from __future__ import annotations`` here (see optuna_sweeper.py).
"""

import contextlib
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf

log = logging.getLogger(__name__)
OWN_KEYS = ("poll_interval", "result_grace", "pending_limit")


@dataclass
class BridgeevalSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.bridgeeval_optuna_sweeper.slurm_launcher.SlurmLauncher"
    poll_interval: float = 10.0  # seconds between squeue calls while jobs run
    result_grace: float = 60.0  # wait this long for the result file of a job Slurm says completed
    pending_limit: float = 3600.0  # seconds a job may pend on drained nodes or maintenance, then stop
    # A float (the stock config's is an int): 0.5 asks for 512 MB (submitit writes --mem=512MB).
    mem_gb: Optional[float] = None


ConfigStore.instance().store(
    group="hydra/launcher", name="bridgeeval_slurm", node=BridgeevalSlurmConf, provider="bridgeeval"
)


class SlurmLauncher(BaseSubmititLauncher):
    _EXECUTOR = "slurm"

    def __init__(self, **params: Any) -> None:
        self.follow_options = {key: float(params.pop(key)) for key in OWN_KEYS if key in params}
        super().__init__(**params)

    def request(self) -> str:
        from bridgeeval.sweeps.slurm import describe_request

        return describe_request(self.params)

    def submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> List[Any]:
        """Submits one job array for the batch; returns submitit's jobs, in order."""
        import submitit

        from bridgeeval.errors import BridgeEvalError

        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=self.params["submitit_folder"],
            slurm_max_num_timeout=self.params.get("max_num_timeout", 0),
        )
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                key if key in base else f"{self._EXECUTOR}_{key}": value
                for key, value in self.params.items()
                if key not in ("submitit_folder", "max_num_timeout")
            }
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        try:
            return list(executor.map_array(self, *zip(*job_params)))
        except Exception as err:  # noqa: BLE001 - sbatch's refusal, in whatever wrapper submitit raises
            lines = [
                line.strip().replace("sbatch: error: ", "") for line in str(err).splitlines() if "error" in line.lower()
            ]
            why = "; ".join(dict.fromkeys(lines)) if lines else str(err).strip().splitlines()[-1]
            raise BridgeEvalError(f"Slurm refused the jobs ({why}); request: {self.request()}") from None

    def follow(self, jobs: Sequence[Any]):
        """The jobs' outcomes as they end; use it closed: leaving early cancels the rest."""
        from bridgeeval.sweeps.slurm import follow

        return follow(jobs, self.request(), **self.follow_options)

    def follower(self):
        """A :class:`~bridgeeval.sweeps.slurm.Follower` that jobs join as they are submitted: the
        sweeper refills each slot as soon as its job ends."""
        from bridgeeval.sweeps.slurm import Follower

        return Follower(self.request(), **self.follow_options)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """A plain multirun's batch (no bridgeeval sweeper): one JobReturn per job; SIGTERM or
        Ctrl-C cancels the batch's jobs; a batch Slurm refuses or will never start is one line."""
        from bridgeeval.errors import BridgeEvalError
        from bridgeeval.sweeps.slurm import failed_return

        previous = _exit_on_sigterm()
        try:
            jobs = self.submit(job_overrides, initial_job_idx)
            returns: List[Any] = [None] * len(jobs)
            with contextlib.closing(self.follow(jobs)) as outcomes:
                for outcome in outcomes:
                    why = outcome.lost or outcome.error
                    ret = outcome.result if why is None else failed_return(job_overrides[outcome.index], why)
                    returns[outcome.index] = ret
        except BridgeEvalError as err:
            print(f"bridgeeval: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return returns


def _exit_on_sigterm():
    """SIGTERM raises SystemExit (so that the batch's jobs are cancelled on the way out); returns
    the handler it replaced, or None off the main thread or when a handler is already set."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):
        return None

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    return previous
