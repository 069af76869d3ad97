"""bridgeeval's Hydra sweeper on current Optuna (``hydra/sweeper=optuna``)."""
