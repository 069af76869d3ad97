"""Optuna sweeps of ``train.py``: search space, shared study coordination, pruning, reports.

The Hydra plugin (``hydra/sweeper=optuna``) lives in ``hydra_plugins.bridgeeval_optuna_sweeper``.
"""
