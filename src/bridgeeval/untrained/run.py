"""``run_untrained(cfg)``: Experiment 2 from a composed config to ``untrained.json`` and Table 2."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from bridgeeval.config import check_untrained_config
from bridgeeval.data import builtin
from bridgeeval.data.wordsim import GENSIM_FILES, gensim_benchmark, read_benchmark
from bridgeeval.errors import BridgeEvalError
from bridgeeval.files import write_json_atomic, write_text_atomic
from bridgeeval.untrained.experiment import (add_significance, map_words, spearman_records, structure_kept,
                                             structure_table, table2)

log = logging.getLogger(__name__)
logging.getLogger("gensim").setLevel(logging.WARNING)  # its test-data helpers log every import


def load_embedding(name: str, path: str | None) -> tuple[np.ndarray, dict[str, int]]:
    """Built-in embeddings by name, or any word2vec / GloVe file (text or binary) by path."""
    if path:
        return _keyed_vectors(Path(path))
    if name == "glove50":
        return builtin.glove50()
    if name == "efficientnet_lite0":  # the built-in visual concept vectors, keyed by word
        data = builtin.load_imagenet1k()
        return data.image, {w: i for i, w in enumerate(data.item_ids)}
    raise BridgeEvalError(
        f"embedding {name!r}: unknown; built in are glove50 and efficientnet_lite0, or give embeddings.{name}=PATH"
    )


def _keyed_vectors(path: Path) -> tuple[np.ndarray, dict[str, int]]:
    from gensim.models import KeyedVectors

    if not path.is_file():
        raise BridgeEvalError(f"{path}: no such embedding file")
    binary = path.suffix == ".bin"
    if path.stat().st_size == 0 or not binary and _is_blank(path):
        raise BridgeEvalError(f"{path}: empty embedding file (no word vectors)")
    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=_no_header(path, binary))
    except (ValueError, UnicodeDecodeError, EOFError, TypeError) as err:  # gensim's TypeError: no rows
        raise BridgeEvalError(f"{path}: not a word2vec/GloVe vector file ({err})") from None
    return kv.vectors, {w.lower(): i for i, w in reversed(list(enumerate(kv.index_to_key)))}


def _is_blank(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return not any(line.strip() for line in handle)


def _no_header(path: Path, binary: bool) -> bool:
    if binary:
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline().split()
    return not (len(first) == 2 and all(f.isdigit() for f in first))


def load_benchmarks(spec: dict) -> list:
    benchmarks = []
    for name, source in spec.items():
        if source is None:
            cached = _cached_benchmark(name)
            if cached is None:
                log.info("benchmark %s: %s; left out", name, _how_to_get(name))
            else:
                benchmarks.append(read_benchmark(cached, name))
        elif source == "gensim":
            if name not in GENSIM_FILES:
                raise BridgeEvalError(f"benchmarks.{name}=gensim: gensim ships only {', '.join(GENSIM_FILES)}")
            benchmarks.append(gensim_benchmark(name))
        else:
            benchmarks.append(read_benchmark(source, name))
    if not benchmarks:
        raise BridgeEvalError("no benchmark available: give at least one benchmarks.NAME=PATH")
    return benchmarks


def _how_to_get(name: str) -> str:
    """What to do for a benchmark that is not here: fetch it if it is downloadable, else give a file."""
    from bridgeeval.data.registry import ENTRIES

    e = ENTRIES.get(name)
    if e is not None and e.kind == "benchmark":
        return f"not cached (bridgeeval data fetch {name}) and no file given"
    return f"no download known; give the file as benchmarks.{name}=PATH (word1<TAB>word2<TAB>score)"


def _cached_benchmark(name: str):
    """The verified cached file of a downloadable benchmark, if `bridgeeval data fetch` got it."""
    from bridgeeval.data import download
    from bridgeeval.data.registry import ENTRIES

    e = ENTRIES.get(name)
    if e is None or e.kind != "benchmark" or not all(ok for ok, _ in download.verify(name).values()):
        return None
    return download.entry_dir(e) / e.files[0].name


def run_untrained(cfg: DictConfig) -> list[dict]:
    check_untrained_config(cfg)
    started = time.time()
    out_dir = Path(cfg.paths.output_dir)
    benchmarks = load_benchmarks(OmegaConf.to_container(cfg.benchmarks, resolve=True))
    seeds = [int(cfg.seed) + i for i in range(int(cfg.draws))]
    records, structure = [], []
    settings = {"output_dim": cfg.map.output_dim, "hidden_units": cfg.map.hidden_units,
                "init_range": cfg.map.init_range, "min_pairs": cfg.min_pairs, "mappings": tuple(cfg.mappings)}
    embeddings = OmegaConf.to_container(cfg.embeddings, resolve=True)
    for i, (name, path) in enumerate(embeddings.items(), start=1):
        step = time.time()
        log.info("embedding %s (%d of %d): loading", name, i, len(embeddings))
        vectors, vocabulary = load_embedding(name, path)
        log.info("%s: %d words x %d dims in %.1f s; mapping the benchmarks' words by %s, %d draws each",
                 name, len(vocabulary), vectors.shape[1], time.time() - step, ", ".join(cfg.mappings), len(seeds))
        words = map_words(name, vectors, vocabulary, benchmarks, seeds, **settings)  # once for both tables
        if words is None:
            continue
        records += spearman_records(words, tuple(cfg.similarities))
        if cfg.measures:
            log.info("%s: measuring how much of X the maps keep (%s over %d draws)", name,
                     ", ".join(cfg.measures), len(seeds))
        structure += structure_kept(words, tuple(cfg.measures), int(cfg.k), str(cfg.similarities[0]),
                                    OmegaConf.to_container(cfg.measure_options, resolve=True))
        log.info("%s done in %.1f s (%.1f s so far)", name, time.time() - step, time.time() - started)
    if not records:
        raise BridgeEvalError(f"no benchmark has min_pairs={cfg.min_pairs} pairs known to the embeddings")
    add_significance(records, alpha=cfg.alpha)
    table = table2(records)
    write_text_atomic(out_dir / "table2.md", table.markdown())
    write_text_atomic(out_dir / "table2.csv", table.csv())
    write_text_atomic(out_dir / "table2.tex", table.latex())
    log.info("Experiment 2: %d cells in %.1f s\n%s", len(records), time.time() - started, table.markdown())
    written = "table2.md, table2.csv, table2.tex, untrained.json"
    if structure:
        kept = structure_table(structure)
        write_text_atomic(out_dir / "structure.md", kept.markdown())
        write_text_atomic(out_dir / "structure.csv", kept.csv())
        write_json_atomic(out_dir / "structure.json", structure)
        log.info("Structure of X kept by the untrained maps:\n%s", kept.markdown())
        written += ", structure.md, structure.csv, structure.json"
    write_json_atomic(out_dir / "untrained.json", records)  # written last: marks a finished run
    log.info("results: %s (%s)", out_dir, written)
    _log_to_loggers(cfg, records, table, out_dir)
    return records


def _log_to_loggers(cfg: DictConfig, records: list[dict], table, out_dir: Path) -> None:
    """Experiment 2's cells to the configured loggers: one W&B run typed ``untrained`` (train.py's
    online/offline decision and console line), the table as a W&B table."""
    from bridgeeval.tracking import JobLoggers  # Lightning's loggers, imported only when logging

    with JobLoggers(cfg, out_dir, job_type="untrained") as job:
        loggers = job.whole_job()
        values = {
            f"{r['embedding']}/{r['mapping']}/{r['benchmark']}/{r['similarity']}": r["spearman_mean"] for r in records
        }
        for logger in loggers:
            logger.log_metrics(values)
            if hasattr(logger, "log_table"):
                logger.log_table(
                    "table2",
                    columns=[table.row_header, *table.columns()],
                    data=[[label, *[c.value for c in cells]] for label, cells in table.rows],
                )
            logger.save()
