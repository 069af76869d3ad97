"""The package's layering, read from its source (every import, the lazy ones inside functions too),
and the one result record every reader shares."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from bridgeeval.errors import BridgeEvalError
from bridgeeval.records import SCHEMA_VERSION, JobRecord, read_job_record

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "bridgeeval"

# A module may import its own part and the parts of lower layers, never a sibling or a higher one.
LAYERS = [
    {"errors", "jsonout", "launch", "reference", "__init__"},  # neutral plumbing, in three steps
    {"files"},
    {"records", "tables", "jobs", "runfolder", "significance"},
    {"metrics", "data"},
    {"models"},
    {"config", "tracking"},
    {"sweeps"},
    {"training", "untrained", "reports", "bench"},
    {"cli"},
]
LEVEL = {part: level for level, parts in enumerate(LAYERS) for part in parts}


def _part(module_path: Path) -> str:
    rel = module_path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _is_part(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def _imports(source: Path) -> set[str]:
    """The parts of bridgeeval a module imports (``from bridgeeval.x...``, ``import bridgeeval.x``)."""
    parts = set()
    for node in ast.walk(ast.parse(source.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module == "bridgeeval":  # a submodule, or __init__'s names
            names = [f"bridgeeval.{a.name if _is_part(a.name) else '__init__'}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            bits = name.split(".")
            if bits[0] == "bridgeeval" and len(bits) > 1:
                parts.add(bits[1])
    return parts


def test_every_module_imports_only_its_own_part_or_lower_layers():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50
    unknown = {_part(m) for m in modules} - set(LEVEL)
    assert not unknown, f"parts without a layer: {unknown}"
    upward = []
    for module in modules:
        part = _part(module)
        for imported in _imports(module) - {part}:
            if imported not in LEVEL or LEVEL[imported] >= LEVEL[part]:
                upward.append(f"{module.relative_to(PACKAGE)} imports bridgeeval.{imported}")
    assert not upward, "\n".join(upward)


def test_the_layering_check_sees_lazy_imports(tmp_path):
    """The reader finds imports inside functions, where lazy upward imports would hide."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from bridgeeval.training.run import train\n    import bridgeeval.cli\n")
    assert _imports(source) == {"training", "cli"}


def test_nothing_outside_training_and_untrained_uses_their_helpers():
    """Shared helpers live in neutral modules: only the entry points import the task packages."""
    users = [
        f"{m.relative_to(PACKAGE)} -> {part}"
        for m in PACKAGE.rglob("*.py")
        for part in _imports(m) & {"training", "untrained"}
        if _part(m) != part
    ]
    assert not users, users


def test_jobs_read_their_config_without_defaults_in_code():
    """Defaults live in the YAML files and the schemas; a job never writes `cfg.x.get(key, default)`
    (which would also hide a misspelt key)."""
    import re

    pattern = re.compile(r"\bcfg(\.\w+)*\.get\(")
    hits = [f"{m.relative_to(PACKAGE)}:{n}" for part in ("training", "untrained", "models")
            for m in (PACKAGE / part).rglob("*.py")
            for n, line in enumerate(m.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits


def _record(**changes) -> JobRecord:
    fields = dict(dataset="builtin", n_items=10, direction="text2image", mapper="nn", depth=1, loss="mse", seed=0,
                  k=3, neighbor_metric="cosine", include_self=False, protocol="kfold", evaluate="pooled",
                  values={"val/mnno_input_mapped": 0.5, "val/mnno_target_mapped": 0.2, "val/r2": None,
                          "pooled/mnno_input_mapped": 0.45, "pooled/mnno_target_mapped": 0.25},
                  folds=[{"split": "fold0", "val/mnno_input_mapped": 0.5}], data={"limit": 10})
    fields.update(changes)
    return JobRecord(**fields)


def test_a_job_record_round_trips_through_metrics_json(tmp_path):
    from bridgeeval.records import write_job_record

    record = _record()
    write_job_record(tmp_path, record)
    raw = json.loads((tmp_path / "metrics.json").read_text())
    assert raw["schema"] == SCHEMA_VERSION and raw["val/mnno_input_mapped"] == 0.5  # flat: jq-friendly
    back = read_job_record(tmp_path)
    assert back == record
    assert back.headline_stage == "pooled" and back.headline("mnno_target_mapped") == 0.25
    assert _record(evaluate="fold").headline("mnno_target_mapped") == 0.2


def test_an_unknown_record_schema_is_refused_in_one_line(tmp_path):
    raw = _record().to_json() | {"schema": 99}
    (tmp_path / "metrics.json").write_text(json.dumps(raw))
    with pytest.raises(BridgeEvalError, match=r"metrics.json: job record schema 99, but this bridgeeval reads "
                                              r"schema 1 \(written by a newer bridgeeval\? upgrade it\)$"):
        read_job_record(tmp_path)


def test_records_written_before_versioning_read_as_schema_1(tmp_path):
    raw = _record().to_json()
    del raw["schema"], raw["evaluate"]  # the layout of the first metrics.json files
    (tmp_path / "metrics.json").write_text(json.dumps(raw))
    record = read_job_record(tmp_path)
    assert record.schema == 1 and record.evaluate == "fold" and record.values["val/mnno_input_mapped"] == 0.5


@pytest.mark.parametrize(
    ("text", "message"),
    [("[1, 2]", "not a job record"), ("{\"schema\": 1}", "not a training job's record \\(no dataset, "),
     ("{", "corrupt metrics.json \\(JSONDecodeError\\)")],
)
def test_a_file_that_is_not_a_record_is_one_line(tmp_path, text, message):
    (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(BridgeEvalError, match=message):
        read_job_record(tmp_path)


def test_every_report_path_reads_a_newer_record_as_one_line(tmp_path):
    """`bridgeeval report` on a job a newer version wrote: the job is skipped with the reason."""
    from bridgeeval.reports.collect import collect_jobs

    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "metrics.json").write_text(json.dumps(_record().to_json() | {"schema": 2}))
    jobs, problems = collect_jobs([tmp_path])
    assert jobs == [] and len(problems) == 1 and "job record schema 2" in problems[0]
