"""Reads the records of an offline W&B run file (``run-*.wandb``), to check what a later
``wandb sync`` would upload: LevelDB-style log blocks of 32 KiB holding wandb's protobuf records."""

from __future__ import annotations

import json
import struct
from pathlib import Path

FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
BLOCK, HEADER = 32768, 7


def records(path: Path):
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    pos, chunks = HEADER, []  # the file starts with wandb's own 7-byte header
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:
            break
        chunks.append(data[pos + HEADER : pos + HEADER + length])
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            chunks = []
            yield record


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def run_contents(path: Path) -> dict:
    """The run's name, group and job type, its history rows, final summary and config."""
    out = {"history": [], "summary": {}, "config": {}}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out.update(name=record.run.display_name, group=record.run.run_group, job_type=record.run.job_type)
        elif kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            out["summary"].update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "config":
            out["config"].update({_key(i): json.loads(i.value_json) for i in record.config.update})
    return out
