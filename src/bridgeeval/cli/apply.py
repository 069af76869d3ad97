"""``bridgeeval map CHECKPOINT INPUT``: a trained map applied to new vectors."""

from __future__ import annotations

from bridgeeval.cli.options import add_id_column_options


def add_parser(sub) -> None:
    p = sub.add_parser(
        "map",
        help="apply a trained map (a checkpoint of checkpoint=true) to new vectors",
        description="Reads INPUT (the formats of `score`), maps each row with the trained map in eval mode "
        "and writes f(INPUT) to --out (.npy, or .csv with the input's row names where it has them). "
        "`bridgeeval score X Y OUT` then scores the mapped vectors.",
    )
    p.add_argument("checkpoint", help="a checkpoint written by a job with checkpoint=true (checkpoints/<split>.ckpt)")
    p.add_argument("input", help="the vectors to map, one row per item")
    p.add_argument("-o", "--out", required=True, help="where f(INPUT) goes: .npy or .csv")
    add_id_column_options(p, "INPUT")
    p.set_defaults(handler=_map)


def _map(args) -> int:
    from pathlib import Path

    import numpy as np
    import torch

    from bridgeeval.cli.options import check_not_an_input, check_writable_target
    from bridgeeval.data.formats import read_matrix
    from bridgeeval.errors import BridgeEvalError
    from bridgeeval.files import atomic_target, write_text_atomic
    from bridgeeval.models.mappers import mapped_values
    from bridgeeval.models.module import load_map

    out = Path(args.out)
    if out.suffix.lower() not in (".npy", ".csv"):
        raise BridgeEvalError(f"--out {out}: write .npy or .csv")
    check_not_an_input(out, "--out", (args.input, args.checkpoint))
    check_writable_target(out, "--out")
    mapper = load_map(args.checkpoint)
    matrix = read_matrix(args.input, args.id_column)
    width = next(mapper.parameters()).shape[1]
    if matrix.values.ndim != 2 or matrix.values.shape[1] != width:
        raise BridgeEvalError(f"{args.input}: rows of {matrix.values.shape[-1]} values; the map takes {width}")
    with np.errstate(over="ignore"):  # an overflow is caught below, as one line
        values = np.asarray(matrix.values, dtype=np.float32)
    _check_finite(values, f"{args.input}", "is outside float32's range (the map computes in float32)")
    mapped = mapped_values(mapper, torch.from_numpy(values)).numpy()
    _check_finite(mapped, f"{args.input}", "maps to NaN or infinite values (the map overflows float32 there)")
    if out.suffix.lower() == ".npy":
        with atomic_target(out, ".npy") as tmp:
            np.save(tmp, mapped)
    else:
        import csv
        import io

        names = matrix.names or [str(i) for i in range(len(mapped))]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["id", *(f"f{j}" for j in range(mapped.shape[1]))])  # a header: ids are read back as ids
        writer.writerows([name, *(repr(float(v)) for v in row)] for name, row in zip(names, mapped))
        write_text_atomic(out, buffer.getvalue())
    print(f"wrote {out} ({mapped.shape[0]} x {mapped.shape[1]})")
    return 0


def _check_finite(values, name: str, what: str) -> None:
    """One line naming the first row that is not finite: nothing is written then."""
    import numpy as np

    from bridgeeval.errors import BridgeEvalError

    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise BridgeEvalError(f"{name}: row {int(np.flatnonzero(bad)[0])} {what}; nothing written")
