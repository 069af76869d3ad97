"""The stock ``custom_search_space`` hook: z is searched near x, and a new key +w is added."""

import hydra
from omegaconf import DictConfig
from optuna.trial import Trial


@hydra.main(version_base=None, config_path="custom-search-space", config_name="config")
def objective(cfg: DictConfig) -> float:
    w, x, z = float(cfg.w), float(cfg.x), float(cfg.z)
    return w * x**2 + z


def configure(cfg: DictConfig, trial: Trial) -> None:
    x = trial.params["x"]
    trial.suggest_float("z", x - cfg.max_z_difference_from_x, x + cfg.max_z_difference_from_x)
    trial.suggest_float("+w", 0.0, 1.0)


def configure_plain(cfg: DictConfig, trial: Trial) -> None:
    """As the newer stock example writes it: ``w`` without ``+`` although the config lacks it."""
    x = trial.params["x"]
    trial.suggest_float("z", x - cfg.max_z_difference_from_x, x + cfg.max_z_difference_from_x)
    trial.suggest_float("w", 0.0, 1.0)


if __name__ == "__main__":
    objective()
